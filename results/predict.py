"""Predicting with an exported model: files or folders in, a table (or CSV) of calls out.

Images are decoded exactly as the training data was (``data_pipeline.decode.decode_bytes``: same
resize and colour conversion) at the export's image size and colour mode. A file that cannot be
read is reported on its own row with the reason; the other files are still predicted.
"""

from __future__ import annotations

import csv
import io
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from results.errors import ResultsError
from results.leaderboard_formats import csv_value
from results.model_io import check_model_input, load_export
from results.output_paths import check_output_file

IMAGE_EXTENSIONS = frozenset({".jpeg", ".jpg", ".png", ".bmp", ".tif", ".tiff"})
CSV_COLUMNS = ("path", "probability", "label", "threshold", "error")


def expand_paths(paths: Sequence[str | os.PathLike]) -> list[Path]:
    """Files as given, folders walked recursively for image files (sorted); missing paths kept.

    A missing path is kept so that it is reported as an error row rather than silently dropped.
    """
    out: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            out.extend(sorted(f for f in p.rglob("*")
                              if f.is_file() and f.suffix.lower() in IMAGE_EXTENSIONS
                              and not f.name.startswith(".")))
        else:
            out.append(p)
    return out


def decode_paths(paths: Sequence[Path], image_size: int, color_mode: str
                 ) -> tuple[np.ndarray, list[int], dict[int, str]]:
    """Decodes the readable files: ``(x, indices of decoded files, {index: error})``."""
    from data_pipeline.decode import decode_bytes

    images, ok, errors = [], [], {}
    for i, path in enumerate(paths):
        try:
            images.append(decode_bytes(Path(path).read_bytes(), image_size, color_mode))
            ok.append(i)
        except FileNotFoundError:
            errors[i] = "no such file"
        except Exception as err:  # noqa: BLE001 - any failure: report this file, go on
            if type(err).__name__ == "UnidentifiedImageError":
                errors[i] = "not an image Pillow can read (JPEG, PNG, BMP, TIFF)"
            else:
                errors[i] = f"cannot read image: {type(err).__name__}: {err}"
    channels = 1 if color_mode == "grayscale" else 3
    x = (np.stack(images) if images
         else np.zeros((0, image_size, image_size, channels), dtype=np.uint8))
    return x, ok, errors


def predict_paths(export_dir: str | os.PathLike, paths: Sequence[str | os.PathLike], *,
                  out: str | os.PathLike | None = None, batch_size: int = 32,
                  threshold: float | None = None) -> list[dict[str, Any]]:
    """Predicts every image under ``paths`` with the export in ``export_dir``.

    Args:
        export_dir: an export folder (``RUN/exports/cnn/rank1``).
        paths: image files and/or folders (walked recursively).
        out: when given, also write the rows to this CSV file.
        batch_size: images per forward pass.
        threshold: override the exported threshold (default: ``threshold.json``'s).

    Returns:
        One dict per file, in input order: ``path``, ``probability`` (of the positive class, or
        None), ``label`` (class name at the threshold, or None), ``threshold``, ``error``
        (``""`` when the file was predicted).

    Raises:
        ResultsError: no paths, an unusable export, or an ``out`` that cannot be written
            (checked before any prediction, so none is computed and then lost).
    """
    if out is not None:
        out = check_output_file(out)
    files = expand_paths(paths)
    if not files:
        raise ResultsError(f"no image files found in {', '.join(map(str, paths)) or '(none)'}; "
                           "pass image files or folders holding .jpeg/.jpg/.png images.")
    export = load_export(Path(export_dir))
    meta = export.metadata
    check_model_input(export.model, meta, str(export_dir))
    t = float(export.threshold["threshold"] if threshold is None else threshold)
    x, ok, errors = decode_paths(files, int(meta["image_size"]), meta["color_mode"])
    probs = (np.asarray(export.model.predict(x.astype(np.float32), batch_size=batch_size,
                                             verbose=0)).reshape(len(x), -1)[:, -1]
             if len(x) else np.zeros(0))
    prob_of = dict(zip(ok, probs.tolist()))
    negative, positive = meta["class_names"][0], meta["class_names"][-1]
    rows = []
    for i, path in enumerate(files):
        if i in prob_of:
            p = float(prob_of[i])
            rows.append({"path": str(path), "probability": p,
                         "label": positive if p >= t else negative, "threshold": t, "error": ""})
        else:
            rows.append({"path": str(path), "probability": None, "label": None, "threshold": t,
                         "error": errors.get(i, "not predicted")})
    if out is not None:
        write_csv(rows, Path(out))
    return rows


def threshold_warning(rows: list[dict[str, Any]]) -> str | None:
    """A warning when the threshold makes every call the same class (0 or less: every film is
    positive; above 1: none is), as a chance-level export's threshold 0.0 does; None otherwise.
    ``predict --threshold 0`` is refused; an exported 0.0 must not pass silently."""
    if not rows:
        return None
    t = float(rows[0]["threshold"])
    if 0.0 < t <= 1.0:
        return None
    return (f"warning: the threshold is {t:g}, so every film is called "
            f"{'the positive class' if t <= 0 else 'the negative class'} whatever its score: "
            "the export's validation scores were at chance level (threshold.json). Retrain or "
            "export another trial, or pass --threshold T (0 < T < 1) knowingly.")


def write_csv(rows: list[dict[str, Any]], path: Path) -> None:
    """Writes prediction rows to CSV (columns :data:`CSV_COLUMNS`), atomically: a full disk or
    a kill leaves the previous file (or none), never a half-written one.

    Raises:
        DiskFullError: no space left (a ``SearchError``: one message, exit 2).
    """
    from search.store.files import write_text_atomic

    buffer = io.StringIO(newline="")
    writer = csv.DictWriter(buffer, fieldnames=CSV_COLUMNS)
    writer.writeheader()
    for row in rows:
        writer.writerow({k: csv_value(row.get(k)) for k in CSV_COLUMNS})
    write_text_atomic(Path(path), buffer.getvalue())


def format_table(rows: list[dict[str, Any]]) -> str:
    """A plain-text table; unreadable files get their own line with the reason."""
    width = max([len("path")] + [len(r["path"]) for r in rows])
    lines = [f"{'path':<{width}}  probability  label"]
    for r in rows:
        if r["error"]:
            lines.append(f"{r['path']:<{width}}  ERROR: {r['error']}")
        else:
            lines.append(f"{r['path']:<{width}}  {r['probability']:11.4f}  {r['label']}")
    return "\n".join(lines)


def print_summary(rows: list[dict[str, Any]], stream: Any = None) -> None:
    """Prints the table and a one-line count of calls and errors."""
    stream = stream or sys.stdout
    print(format_table(rows), file=stream)
    n_err = sum(1 for r in rows if r["error"])
    counts: dict[str, int] = {}
    for r in rows:
        if not r["error"]:
            counts[r["label"]] = counts.get(r["label"], 0) + 1
    summary = ", ".join(f"{v} {k}" for k, v in sorted(counts.items()))
    threshold = rows[0]["threshold"] if rows else float("nan")
    print(f"{len(rows) - n_err} predicted ({summary or 'none'}) at threshold {threshold:.4f}"
          + (f"; {n_err} unreadable" if n_err else ""), file=stream)
