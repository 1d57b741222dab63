"""The test images a report scores: the run's recorded test split, or a folder the user names,
refused when it overlaps the images the search trained on (by file, patient or content)."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import numpy as np

from results.errors import ResultsError
from results.model_io import check_compatible


def is_synthetic(data_dir: str | Path | None) -> bool:
    """True for the built-in synthetic set (its generator leaves a marker file)."""
    if not data_dir:
        return False
    root = Path(data_dir)
    return (root / ".synthetic-complete").is_file() or "synthetic" in root.name.lower()


def _is_within(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def check_test_dir(test_dir: str | Path, run_dir: str | Path,
                   data_dir: str | Path | None) -> Path:
    """Cheap checks on ``--test-dir`` (paths only, nothing decoded), usable before a search.

    Refuses a folder that does not exist, and one that is (or lies inside) the run's data
    folder without a ``test/`` folder of its own: compare would then read the run's training
    images.

    Returns:
        ``test_dir`` as a Path.

    Raises:
        ResultsError: naming the folder, the rule and the fix.
    """
    test_dir = Path(test_dir)
    if not test_dir.is_dir():
        raise ResultsError(
            f"--test-dir {test_dir} is not an existing folder. Pass a folder of class subfolders "
            f"(or a Kaggle-style folder with test/), or leave --test-dir out to use the run's "
            f"recorded test split.")
    if data_dir and not (test_dir / "test").is_dir():
        here, data = Path(os.path.realpath(test_dir)), Path(os.path.realpath(data_dir))
        if _is_within(here, data) and not _is_within(here, data / "test"):
            raise ResultsError(_leak_message(
                test_dir, run_dir, f"it is the run's own data folder {data_dir} (or a part of it "
                "other than test/), so its images are the ones the models were trained on"))
    return test_dir


def _leak_message(test_dir: Path, run_dir: str | Path, why: str) -> str:
    return (f"--test-dir {test_dir} overlaps the training data of the run {run_dir}: {why}. "
            "A model scored on its own training images or patients gives inflated numbers, so "
            "the test images must share no file, no file content and no patient with the run's "
            f"training pool. Fix: use the run's recorded test split, `run_search.py compare "
            f"--run-dir {run_dir}` without --test-dir, or pass a folder of other patients' "
            "images.")


def refuse_training_overlap(ds: Any, idx: np.ndarray, test_dir: Path, run_dir: Path,
                            run: dict[str, Any], progress: bool = False) -> None:
    """Refuses test images that are also in the run's training pool.

    Three rules, any one refuses: the same file (path), the same bytes (sha256), or the same
    patient group (``<class>/<patient id>``, duplicates merged) as an image of the run's
    ``train_idx``. When the run's data can no longer be read, a warning says the check was
    skipped.

    Raises:
        ResultsError: naming the folder, the rule with examples, and the fix.
    """
    from data_pipeline.errors import UserError
    from results.run_data import load_run_data

    try:
        run_ds, split = load_run_data(run_dir, run, progress=progress)
    except UserError as err:
        print(f"warning: cannot check that --test-dir {test_dir} shares no images or patients "
              f"with the run's training data ({err})", file=sys.stderr)
        return
    train = np.asarray(split.train_idx)
    test_paths = [ds.paths[i] for i in idx]

    def real(root: Path, rel: str) -> str:
        return os.path.realpath(Path(root) / rel)

    train_files = {real(run_ds.root, run_ds.paths[i]) for i in train}
    rules = []
    same_file = [p for p in test_paths if real(ds.root, p) in train_files]
    if same_file:
        rules.append(f"{len(same_file)} image(s) are training files of the run "
                     f"(e.g. {', '.join(same_file[:3])})")
    if ds.digests and run_ds.digests:
        train_bytes = {run_ds.digests[i] for i in train}
        same_bytes = [p for p, i in zip(test_paths, idx)
                      if ds.digests[i] in train_bytes and p not in same_file]
        if same_bytes:
            rules.append(f"{len(same_bytes)} image(s) are byte-identical to training images "
                         f"(e.g. {', '.join(same_bytes[:3])})")
    train_groups = set(run_ds.groups[train].tolist())
    shared = sorted({str(g) for g in ds.groups[idx]} & train_groups)
    if shared and not same_file:
        rules.append(f"{len(shared)} patient group(s) also have training images "
                     f"(e.g. {', '.join(shared[:3])})")
    if rules:
        raise ResultsError(_leak_message(test_dir, run_dir, "; ".join(rules)))


def load_test_data(run_dir: Path, run: dict[str, Any], meta: dict[str, Any],
                   test_dir: str | Path | None, progress: bool = True) -> dict[str, Any]:
    """Test images, labels and patient groups at the export's image size and colour mode.

    With ``test_dir``: its ``test/`` images when it has that folder, else all its images; they
    must share no file, content or patient with the run's training pool
    (:func:`refuse_training_overlap`). Without: the run's recorded test split (``split.json``).

    Raises:
        ResultsError: class names, image size or colour mode differ from the export's, or the
            test images overlap the run's training data.
    """
    import data_pipeline

    export_name = f"the export {meta.get('family', '')} rank{meta.get('rank', 1)}"
    if test_dir is not None:
        test_dir = check_test_dir(test_dir, run_dir, (run.get("config") or {}).get("data"))
        given = test_dir
        if (test_dir / "test").is_dir() and not (test_dir / "train").is_dir():
            test_dir = test_dir / "test"  # a Kaggle folder holding only test/: read it flat
        # Check the class folders before decoding anything: a mismatch names both sets of names.
        try:
            found = sorted(data_pipeline.discover(test_dir).class_names)
        except data_pipeline.DataError as err:
            # discover's messages name --data, the search's option; here the folder came
            # from --test-dir, and --data (the run's training data) is not what to fix.
            raise ResultsError(f"--test-dir {given}: " + str(err).replace("--data", "--test-dir")
                               ) from None
        if found != sorted(meta["class_names"]):
            check_compatible(meta, class_names=found, source=str(test_dir), export=export_name)
        ds = data_pipeline.load_dataset(test_dir, image_size=int(meta["image_size"]),
                                        color_mode=meta["color_mode"],
                                        positive_class=meta.get("positive_class"),
                                        progress=progress)
        check_compatible(meta, class_names=ds.class_names, source=str(test_dir),
                         export=export_name)
        idx = np.flatnonzero(ds.origin == "test")
        if idx.size == 0:
            idx = np.arange(len(ds.y))
        source = f"{test_dir} ({'its test/ folder' if (ds.origin == 'test').any() else 'all images'})"
        data_dir = test_dir
        refuse_training_overlap(ds, idx, given, run_dir, run, progress)
    else:
        from results.run_data import load_run_data

        cfg = run["config"]
        check_compatible(meta, class_names=run.get("class_names"),
                         image_size=cfg.get("image_size"), color_mode=cfg.get("color_mode"),
                         source=f"the run {run_dir}", export=export_name)
        ds, split = load_run_data(run_dir, run, progress=progress)
        idx = np.asarray(split.test_idx)
        source = (f"the run's test split ({getattr(split, 'source', 'recorded')}) of "
                  f"{cfg['data']}")
        data_dir = cfg["data"]
    if idx.size == 0:
        raise ResultsError(f"no test images found in {source}; pass --test-dir with a folder "
                           "of class subfolders.")
    return {"x": ds.x[idx], "y": ds.y[idx].astype(int), "groups": ds.groups[idx],
            "paths": [ds.paths[i] for i in idx], "class_names": list(ds.class_names),
            "source": source, "synthetic": is_synthetic(data_dir)}
