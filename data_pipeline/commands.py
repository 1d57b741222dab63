"""The ``data`` subcommand: load a data folder and print its summary, splits and folds."""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any


def register(subparsers: argparse._SubParsersAction) -> None:
    """Adds the ``data`` subcommand."""
    p = subparsers.add_parser(
        "data",
        help="check a data folder: images, patients, duplicates, test split and folds",
        description=(
            "Loads a chest X-ray folder (ROOT/train/<CLASS>, optional test/ and val/, or "
            "ROOT/<CLASS>) and prints images per split and class, patients, duplicate files, "
            "skipped files, the test split and, per fold, the train/validation counts and the "
            "patient overlap (always 0). Without --data: the built-in synthetic data."
        ),
    )
    p.add_argument("--data", metavar="DIR", default=None,
                   help="data folder (default: built-in synthetic data)")
    p.add_argument("--image-size", type=int, default=64, metavar="N",
                   help="square image side in pixels, 8..1024 (default 64)")
    p.add_argument("--folds", type=int, default=3, metavar="K",
                   help="cross-validation folds; 1 = one patient-grouped hold-out (default 3)")
    p.add_argument("--seed", type=int, default=42, metavar="S", help="seed of splits and folds (default 42)")
    p.add_argument("--test-fraction", type=float, default=0.15, metavar="F",
                   help="test share carved from train when there is no test/ folder (default 0.15)")
    p.add_argument("--color-mode", choices=("grayscale", "rgb"), default="grayscale",
                   help="decode to 1 or 3 channels (default grayscale)")
    p.add_argument("--positive-class", metavar="NAME", default=None,
                   help="label-1 class for two classes (default PNEUMONIA when present)")
    p.add_argument("--cache-dir", metavar="DIR", default=None,
                   help="decoded-image cache (default $CXR_CACHE_DIR/decoded or .cache/decoded)")
    p.add_argument("--strict", action="store_true", help="refuse unreadable images instead of skipping them")
    p.add_argument("--json", action="store_true", help="print the summary as one JSON object")
    p.set_defaults(func=run_data)


def _counts(y: Any, class_names: list[str]) -> dict[str, int]:
    import numpy as np

    return {name: int(np.sum(np.asarray(y) == i)) for i, name in enumerate(class_names)}


def _patients(y: Any, groups: Any, class_names: list[str]) -> dict[str, int]:
    import numpy as np

    return {name: int(np.unique(groups[y == i]).size) for i, name in enumerate(class_names)}


def summarize(ds: Any, split: Any, folds: list, *, synthetic: bool, seconds: float) -> dict[str, Any]:
    """The summary of a loaded dataset, its test split and folds, as JSON-ready data."""
    import numpy as np

    names = ds.class_names
    by_split = {o: _counts(ds.y[ds.origin == o], names)
                for o in ("train", "test", "val") if (ds.origin == o).any()}
    tr, te = split.train_idx, split.test_idx
    test_overlap = set(ds.groups[tr]) & set(ds.groups[te])
    y_tr, g_tr = ds.y[tr], ds.groups[tr]
    fold_rows = []
    for k, (a, b) in enumerate(folds):
        fold_rows.append({
            "fold": k,
            "train": _counts(y_tr[a], names), "val": _counts(y_tr[b], names),
            "train_patients": int(np.unique(g_tr[a]).size),
            "val_patients": int(np.unique(g_tr[b]).size),
            "patient_overlap": len(set(g_tr[a]) & set(g_tr[b])),
        })
    n_val = int((ds.origin == "val").sum())
    return {
        "data": str(ds.root), "synthetic": synthetic, "fingerprint": ds.fingerprint,
        "image_size": ds.image_size, "color_mode": ds.color_mode,
        "class_names": names, "positive_class": ds.positive_class,
        "images": {"total": int(len(ds.y)), "by_class": _counts(ds.y, names), "by_split": by_split},
        "patients": _patients(ds.y, ds.groups, names),
        "duplicate_sets": ds.duplicate_sets,
        "skipped": [{"path": p, "reason": r} for p, r in ds.skipped],
        "val_folder": {"images": n_val,
                       "use": "ignored: not used for training, validation or test"},
        "test_split": {
            "source": split.source, "seed": split.seed,
            "test_fraction": split.test_fraction if split.source == "carved" else None,
            "train": _counts(ds.y[tr], names), "test": _counts(ds.y[te], names),
            "train_patients": int(np.unique(ds.groups[tr]).size),
            "test_patients": int(np.unique(ds.groups[te]).size),
            "patient_overlap": len(test_overlap),
            "dropped_from_train": int(getattr(split, "dropped_from_train", 0)),
        },
        "folds": fold_rows,
        "load_seconds": round(seconds, 3),
    }


def _fmt_counts(c: dict[str, int]) -> str:
    return ", ".join(f"{k} {v}" for k, v in c.items())


def format_summary(s: dict[str, Any]) -> str:
    """The summary as readable text."""
    lines = [f"data: {s['data']}{'  (built-in synthetic data)' if s['synthetic'] else ''}",
             f"classes: {s['class_names']} (positive: {s['positive_class']}); "
             f"images {s['image_size']}x{s['image_size']} {s['color_mode']}",
             f"images: {s['images']['total']} ({_fmt_counts(s['images']['by_class'])})"]
    for origin, c in s["images"]["by_split"].items():
        lines.append(f"  {origin + '/':7} {sum(c.values()):6}  ({_fmt_counts(c)})")
    lines.append(f"patients: {_fmt_counts(s['patients'])}")
    lines.append(f"duplicate sets (byte-identical, kept in one group): {len(s['duplicate_sets'])}")
    lines.append(f"skipped unreadable files: {len(s['skipped'])}")
    lines += [f"  {d['path']}: {d['reason']}" for d in s["skipped"][:20]]
    if s["val_folder"]["images"]:
        lines.append(f"val/ folder: {s['val_folder']['images']} images, {s['val_folder']['use']}")
    t = s["test_split"]
    src = ("test/ folder" if t["source"] == "test_folder"
           else f"carved from train, {t['test_fraction']:.0%} by patient, seed {t['seed']}")
    lines.append(f"test split: {src}")
    lines.append(f"  train {sum(t['train'].values())} ({_fmt_counts(t['train'])}), "
                 f"{t['train_patients']} patients")
    lines.append(f"  test  {sum(t['test'].values())} ({_fmt_counts(t['test'])}), "
                 f"{t['test_patients']} patients; patients shared with train: {t['patient_overlap']}")
    if t["source"] == "test_folder":
        lines.append(f"  dropped from train: {t.get('dropped_from_train', 0)} image(s) of patients "
                     "(or duplicate files) also in test/")
    lines.append(f"folds: {len(s['folds'])} (patient-grouped, stratified)")
    for f in s["folds"]:
        lines.append(f"  fold {f['fold']}: train {sum(f['train'].values())} ({_fmt_counts(f['train'])}) | "
                     f"val {sum(f['val'].values())} ({_fmt_counts(f['val'])}) | "
                     f"patient overlap {f['patient_overlap']}")
    lines.append(f"fingerprint: {s['fingerprint'][:16]}  (loaded in {s['load_seconds']:.2f}s)")
    return "\n".join(lines)


def run_data(args: argparse.Namespace) -> int:
    """Handler of ``data``: every check first, then load, split, fold and print."""
    import numpy as np

    from data_pipeline.dataset import check_color_mode, check_image_size, load_dataset
    from data_pipeline.discovery import discover, resolve_classes
    from data_pipeline.folds import check_folds, make_folds
    from data_pipeline.groups import name_groups
    from data_pipeline.splits import check_test_fraction, split_train_test
    from data_pipeline.synthetic import default_data_dir

    check_image_size(args.image_size)
    check_color_mode(args.color_mode)
    check_test_fraction(args.test_fraction)
    synthetic = args.data is None
    if synthetic:
        print("[data] no --data given: using the built-in SYNTHETIC chest-X-ray-like data "
              "(not real X-rays; pass --data DIR for the Kaggle set)", file=sys.stderr)
        root = default_data_dir()
    else:
        root = args.data
    # Folder, class and fold checks from file names alone, before any decoding.
    found = discover(root)
    class_names, _ = resolve_classes(found.class_names, args.positive_class)
    train_files = [f for f in found.files if f.origin == "train"]
    label = {n: i for i, n in enumerate(class_names)}
    y_pre = np.array([label[f.class_name] for f in train_files])
    check_folds(y_pre, name_groups([f.path for f in train_files], [f.class_name for f in train_files]),
                args.folds, class_names, what=f"training images of {str(found.root)!r}")

    start = time.perf_counter()
    ds = load_dataset(root, image_size=args.image_size, color_mode=args.color_mode,
                      positive_class=args.positive_class, strict=args.strict,
                      cache_dir=args.cache_dir, progress=True)
    split = split_train_test(ds, test_fraction=args.test_fraction, seed=args.seed)
    tr = split.train_idx
    check_folds(ds.y[tr], ds.groups[tr], args.folds, ds.class_names,
                what="training part (after the test split)")
    folds = make_folds(ds.y[tr], ds.groups[tr], args.folds, args.seed)
    summary = summarize(ds, split, folds, synthetic=synthetic, seconds=time.perf_counter() - start)
    if args.json:
        print(json.dumps(summary))
    else:
        print(format_summary(summary))
    return 0
