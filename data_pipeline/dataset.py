"""``load_dataset``: a data folder -> arrays, labels, patient groups, with a decode cache."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from data_pipeline import cache
from data_pipeline.decode import COLOR_MODES, MAX_IMAGE_SIZE, MIN_IMAGE_SIZE, decode_files
from data_pipeline.discovery import discover, fingerprint_files, resolve_classes
from data_pipeline.errors import DataError
from data_pipeline.groups import duplicate_sets, merge_duplicate_groups, name_groups

# Information for the user goes through logging, not warnings.warn: the CLI prints it as one
# 'warning: ...' line (data_pipeline.cli) and a search copies it into search.log
# (search.watch.progress.Progress.capture_logs); warnings.warn printed a Python source line.
log = logging.getLogger(__name__)


@dataclass
class Dataset:
    """A decoded dataset; see ARCHITECTURE.md for the contract of each field."""

    root: Path
    class_names: list[str]
    positive_class: str | None
    image_size: int
    color_mode: str
    x: np.ndarray
    y: np.ndarray
    groups: np.ndarray
    paths: list[str]
    origin: np.ndarray
    skipped: list[tuple[str, str]] = field(default_factory=list)
    duplicate_sets: list[list[str]] = field(default_factory=list)
    fingerprint: str = ""
    digests: list[str] = field(default_factory=list)  # sha256 of each file's bytes, as paths
    # {relative path: sha256} of every discovered file, skipped ones included ("" unreadable):
    # what data_pipeline.content.content_digests would compute, from the decoder's own pass.
    file_digests: dict[str, str] = field(default_factory=dict)


def check_image_size(image_size: int) -> None:
    """Raises DataError unless ``image_size`` is an integer in 8..1024."""
    if (isinstance(image_size, bool) or not isinstance(image_size, (int, np.integer))
            or not MIN_IMAGE_SIZE <= image_size <= MAX_IMAGE_SIZE):
        raise DataError(
            f"--image-size {image_size!r} is out of range: images are resized to a square of "
            f"{MIN_IMAGE_SIZE} to {MAX_IMAGE_SIZE} pixels a side. Fix: pass --image-size 64 "
            "(default), 128 or 224, say."
        )


def check_color_mode(color_mode: str) -> None:
    """Raises DataError unless ``color_mode`` is ``"grayscale"`` or ``"rgb"``."""
    if color_mode not in COLOR_MODES:
        raise DataError(
            f"--color-mode {color_mode!r} is not supported: use one of {', '.join(COLOR_MODES)}. "
            "Fix: pass --color-mode grayscale (default; X-rays are single-channel) or rgb."
        )


def load_dataset(root: str | os.PathLike, *, image_size: int = 64, color_mode: str = "grayscale",
                 positive_class: str | None = None, strict: bool = False,
                 cache_dir: str | os.PathLike | None = None, progress: bool = True,
                 workers: int | None = None) -> Dataset:
    """Loads a Kaggle-layout (or flat) folder of class folders into memory.

    Every check on the folder and the options runs before any decoding. Decoded arrays are cached
    (see :mod:`data_pipeline.cache`); a second load with the same files and settings only reads
    the cache.

    Args:
        root: The data folder: ``ROOT/train/<CLASS>`` (+ optional ``test/``, ``val/``) or
            ``ROOT/<CLASS>``.
        image_size: Side of the square images, 8..1024.
        color_mode: ``"grayscale"`` (1 channel) or ``"rgb"`` (3).
        positive_class: Label 1 for two classes; default PNEUMONIA when present.
        strict: Refuse unreadable files instead of skipping them with a warning.
        cache_dir: Folder of the decode cache; default ``$CXR_CACHE_DIR/decoded`` or
            ``<repo>/.cache/decoded``.
        progress: Progress bar on stderr while decoding.
        workers: Decoding processes; default every core.

    Returns:
        The :class:`Dataset`.

    Raises:
        DataError: Bad folder or option, unreadable files with ``strict``, or a class left
            without images after skipping unreadable files.
    """
    check_image_size(image_size)
    check_color_mode(color_mode)
    found = discover(root)
    class_names, positive = resolve_classes(found.class_names, positive_class)
    files = found.files
    fingerprint = fingerprint_files(files, image_size, color_mode)

    entry = cache.load_entry(cache_dir, fingerprint)
    if entry is None:
        x, digests, errors = decode_files(
            [found.root / f.path for f in files], image_size, color_mode,
            workers=workers, progress=progress,
            label=f"decoding {len(files)} images from {found.root}",
        )
        cache.save_entry(cache_dir, fingerprint, x, digests, errors)
    else:
        x, digests, errors = entry

    paths_all = [f.path for f in files]
    skipped = [(p, e) for p, e in zip(paths_all, errors) if e]
    if skipped:
        listing = "; ".join(f"{p} ({e})" for p, e in skipped[:20])
        more = f"; and {len(skipped) - 20} more" if len(skipped) > 20 else ""
        if strict:
            raise DataError(
                f"{len(skipped)} unreadable image file(s) in {str(found.root)!r}: {listing}{more}. "
                "With --strict every image must decode. Fix: delete or replace those files, or "
                "drop --strict to skip them."
            )
        log.warning("skipped %d unreadable image file(s): %s%s", len(skipped), listing, more)
    keep = np.array([not e for e in errors], dtype=bool)
    kept_files = [f for f, k in zip(files, keep) if k]
    label_of = {name: i for i, name in enumerate(class_names)}
    y = np.array([label_of[f.class_name] for f in kept_files], dtype=np.int64)
    for name in class_names:
        if not any(f.class_name == name and f.origin == "train" for f in kept_files):
            raise DataError(
                f"class {name!r} has no readable training image in {str(found.root)!r} (all its "
                "files were skipped as unreadable). Fix: replace the broken files."
            )
    paths = [f.path for f in kept_files]
    kept_digests = [d for d, k in zip(digests, keep) if k]
    dups = duplicate_sets(paths, kept_digests)
    groups = merge_duplicate_groups(name_groups(paths, [f.class_name for f in kept_files]),
                                    paths, dups)
    return Dataset(
        root=found.root,
        class_names=class_names,
        positive_class=positive,
        image_size=int(image_size),
        color_mode=color_mode,
        x=x[keep] if not keep.all() else x,
        y=y,
        groups=groups,
        paths=paths,
        origin=np.asarray([f.origin for f in kept_files], dtype=str),
        skipped=skipped,
        duplicate_sets=dups,
        fingerprint=fingerprint,
        digests=list(kept_digests),
        file_digests=dict(zip(paths_all, (str(d) for d in digests))),
    )
