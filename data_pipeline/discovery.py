"""Finding the images of a data folder, before any decoding.

Two layouts are accepted:

* Kaggle: ``ROOT/train/<CLASS>/*``, optional ``ROOT/test/<CLASS>/*`` and ``ROOT/val/<CLASS>/*``;
* flat: ``ROOT/<CLASS>/*``, read as a train-only set.

Class names are the folder names. Only files with an image extension count; anything else
(``.DS_Store``, notes, thumbnails databases) is ignored. Every structural problem raises
:class:`~data_pipeline.errors.DataError` here, so a bad folder is refused before any work.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from data_pipeline.errors import DataError

IMAGE_EXTENSIONS = frozenset({".jpeg", ".jpg", ".png", ".bmp", ".tif", ".tiff"})
SPLIT_FOLDERS = ("train", "test", "val")
DEFAULT_POSITIVE = "PNEUMONIA"


@dataclass(frozen=True)
class ImageFile:
    """One image file found on disk.

    Attributes:
        path: Path relative to the data root, posix separators.
        class_name: The class folder it sits in.
        origin: ``"train"``, ``"test"`` or ``"val"``: the split folder (``"train"`` for flat).
        size: File size in bytes.
        mtime_ns: Modification time in nanoseconds.
    """

    path: str
    class_name: str
    origin: str
    size: int
    mtime_ns: int


@dataclass(frozen=True)
class Discovery:
    """The file list of a data folder, sorted by path, with its class folders."""

    root: Path
    layout: str  # "kaggle" | "flat"
    class_names: list[str]  # sorted folder names (train classes)
    files: list[ImageFile]


def _visible_dirs(folder: Path) -> list[os.DirEntry]:
    # Hidden folders and archive debris such as __MACOSX are never classes.
    with os.scandir(folder) as it:
        return sorted(
            (e for e in it if e.is_dir() and not e.name.startswith((".", "__"))),
            key=lambda e: e.name,
        )


def _images_in(folder: Path, rel_prefix: str, class_name: str, origin: str) -> list[ImageFile]:
    found = []
    with os.scandir(folder) as it:
        for entry in it:
            if entry.name.startswith(".") or not entry.is_file():
                continue
            if os.path.splitext(entry.name)[1].lower() not in IMAGE_EXTENSIONS:
                continue
            st = entry.stat()
            found.append(
                ImageFile(f"{rel_prefix}/{entry.name}", class_name, origin, st.st_size, st.st_mtime_ns)
            )
    return found


def _nested_kaggle_root(root: Path, depth: int = 2) -> Path | None:
    """The first folder below ``root`` (up to ``depth`` levels) that holds ``train/``, else None.

    The Kaggle zip unpacks to ``chest_xray/chest_xray/{train,test,val}`` (plus ``__MACOSX``), so
    the folder a user naturally passes is one level too high.
    """
    for d in _visible_dirs(root):
        sub = Path(d.path)
        if (sub / "train").is_dir():
            return sub
        if depth > 1:
            deeper = _nested_kaggle_root(sub, depth - 1)
            if deeper is not None:
                return deeper
    return None


def discover(root: str | os.PathLike) -> Discovery:
    """Lists the images under ``root`` and checks the folder structure.

    Args:
        root: The data folder (Kaggle layout or flat class folders).

    Returns:
        The sorted file list and the class names.

    Raises:
        DataError: Missing folder, no class folders, one class only, an empty class, no images,
            the Kaggle folder one level too high, or a folder this user may not read.
    """
    try:
        return _discover(Path(root).expanduser())
    except PermissionError as err:
        # Listing a folder needs read and execute permission; name the folder, not a traceback.
        where = err.filename or str(root)
        raise DataError(
            f"cannot read {str(where)!r}: permission denied ({err.strerror}). Every folder of "
            f"the data must be readable by this user to list its images. Fix: make it readable "
            f"(for example `chmod -R u+rX {where}`), run as a user who can read it, or point "
            "--data at a readable copy."
        ) from None


def _discover(root: Path) -> Discovery:
    if not root.is_dir():
        what = "is a file, not a folder" if root.exists() else "does not exist"
        raise DataError(
            f"data folder {str(root)!r} {what}. The data folder must contain train/<CLASS>/ "
            "folders (Kaggle layout) or one folder per class. Fix: pass --data with the path "
            "of the unpacked chest_xray folder, or leave --data out to use the built-in "
            "synthetic data."
        )
    if (root / "train").is_dir():
        layout, train_dir = "kaggle", root / "train"
    else:
        layout, train_dir = "flat", root
        inner = _nested_kaggle_root(root)
        if inner is not None:
            raise DataError(
                f"data folder {str(root)!r} is one level too high: the Kaggle layout "
                f"(train/, test/, val/) is inside {str(inner)!r}, so its name would be taken "
                f"as a class. Fix: pass --data {inner}."
            )
        stray = [name for name in ("test", "val") if (root / name).is_dir()]
        if stray:
            raise DataError(
                f"data folder {str(root)!r} has {'/ and '.join(stray)}/ but no train/ folder. "
                "A Kaggle-layout folder needs train/<CLASS>/ next to test/ and val/. Fix: add "
                "the train/ folder, or point --data at a folder of class folders."
            )
    class_dirs = _visible_dirs(train_dir)
    if not class_dirs:
        nested = [d.name for d in _visible_dirs(root) if (Path(d.path) / "train").is_dir()]
        hint = f" It contains {nested[0]}/train: pass --data {root / nested[0]}." if nested else ""
        raise DataError(
            f"no class folders in {str(train_dir)!r}: the images must sit in one sub-folder per "
            f"class (for example {train_dir / 'NORMAL'} and {train_dir / 'PNEUMONIA'}).{hint} "
            "Fix: arrange the images by class folder, or point --data at the right folder."
        )
    class_names = [d.name for d in class_dirs]
    rel_base = "train/" if layout == "kaggle" else ""
    files: list[ImageFile] = []
    per_class: dict[str, int] = {}
    for d in class_dirs:
        found = _images_in(Path(d.path), f"{rel_base}{d.name}", d.name, "train")
        per_class[d.name] = len(found)
        files.extend(found)
    if not files:
        raise DataError(
            f"no images in {str(train_dir)!r}: its class folders ({', '.join(class_names)}) "
            f"hold no files ending in {', '.join(sorted(IMAGE_EXTENSIONS))}. Fix: copy the "
            "JPEG/PNG images into the class folders, or point --data at the right folder."
        )
    if len(class_names) < 2:
        raise DataError(
            f"only one class folder ({class_names[0]!r}) in {str(train_dir)!r}: a classifier "
            "needs at least two classes, one folder each (for example NORMAL and PNEUMONIA). "
            "Fix: add the other class folder with its images."
        )
    empty = [name for name, n in per_class.items() if n == 0]
    if empty:
        raise DataError(
            f"class folder {str(train_dir / empty[0])!r} has no images (every class needs at "
            f"least one; empty: {', '.join(empty)}). Fix: add its images or remove the folder."
        )
    if layout == "kaggle":
        for origin in ("test", "val"):
            split_dir = root / origin
            if not split_dir.is_dir():
                continue
            for d in _visible_dirs(split_dir):
                if d.name not in per_class:
                    raise DataError(
                        f"class folder {d.path!r} has no counterpart in {str(train_dir)!r} "
                        f"(train classes: {', '.join(class_names)}). Every class of {origin}/ "
                        "must also be a train class. Fix: rename or remove that folder."
                    )
                files.extend(_images_in(Path(d.path), f"{origin}/{d.name}", d.name, origin))
    files.sort(key=lambda f: f.path)
    return Discovery(root=root, layout=layout, class_names=class_names, files=files)


def resolve_classes(class_names: list[str], positive_class: str | None) -> tuple[list[str], str | None]:
    """Orders the class names so that the index is the label.

    Two classes: ``[negative, positive]`` with the positive class ``positive_class``, else
    PNEUMONIA when present, else the second name alphabetically. More classes: sorted names and
    no positive class.

    Raises:
        DataError: ``positive_class`` is not one of the classes, or there are more than two.
    """
    names = sorted(class_names)
    if positive_class is not None and positive_class not in names:
        raise DataError(
            f"positive class {positive_class!r} is not a class folder of the data (classes: "
            f"{', '.join(names)}). Fix: pass --positive-class with one of those names."
        )
    if len(names) != 2:
        if positive_class is not None:
            raise DataError(
                f"--positive-class {positive_class!r} needs exactly two classes, the data has "
                f"{len(names)} ({', '.join(names)}). Fix: leave --positive-class out."
            )
        return names, None
    positive = positive_class or (DEFAULT_POSITIVE if DEFAULT_POSITIVE in names else names[1])
    negative = names[0] if names[1] == positive else names[1]
    return [negative, positive], positive


def fingerprint_files(files: list[ImageFile], image_size: int | None = None,
                      color_mode: str | None = None) -> str:
    """sha256 of the file list (paths, sizes, mtimes), plus the decode settings when given."""
    h = hashlib.sha256()
    for f in files:
        h.update(f"{f.path}\t{f.size}\t{f.mtime_ns}\n".encode())
    if image_size is not None or color_mode is not None:
        h.update(f"image_size={image_size}\tcolor_mode={color_mode}\n".encode())
    return h.hexdigest()


def data_fingerprint(root: str | os.PathLike, *, image_size: int | None = None,
                     color_mode: str | None = None) -> str:
    """Cheap fingerprint of a data folder: the file list only, no decoding.

    With ``image_size`` and ``color_mode`` it equals ``load_dataset(...).fingerprint`` for the
    same settings; without them it covers the file list alone.
    """
    return fingerprint_files(discover(root).files, image_size, color_mode)
