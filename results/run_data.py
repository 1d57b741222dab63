"""The data a run was searched on, loaded again for export, compare and site references.

The run's folder (or the one ``--data`` points it at, :func:`with_data`) is decoded as the
search decoded it and checked against what the run recorded: the class names, and the files'
content (``data_files.json``) when the file list's fingerprint changed, so a copied folder is
still the run's data.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from results.errors import ResultsError
from results.model_io import read_json


def with_data(run: dict[str, Any], data: str | Path | None) -> dict[str, Any]:
    """The run record pointed at ``data`` (``--data`` of export and compare), else unchanged.

    For data that moved after the search: the run folder is not rewritten, so pass --data
    again to each later command (or resume the search once with --data, which records it).

    Raises:
        ResultsError: ``data`` is not a folder.
    """
    if data is None:
        return run
    path = Path(data).expanduser()
    if not path.is_dir():
        raise ResultsError(f"--data {path}: no such folder. Give the folder the run's data "
                           "moved to (the chest_xray folder with train/ and its class folders).")
    out = dict(run)
    out["config"] = {**run.get("config", {}), "data": str(path.resolve())}
    return out


def _check_data_folder(run_dir: Path, run: dict[str, Any]) -> None:
    """Refuses a run whose data folder is gone, naming the ways to point it at the new place."""
    data = (run.get("config") or {}).get("data")
    if data and not Path(data).is_dir():
        raise ResultsError(
            f"the data folder of the run {run_dir}, {data}, does not exist any more. If the "
            f"data moved, point the run at it: add --data NEW_PATH to export or compare, or "
            f"resume the search once with `run_search.py search --data NEW_PATH --run-dir "
            f"{run_dir}` and the run's other options (that records the new path; the contents "
            "must be the same files).")


def _same_content(run_dir: Path, dataset: Any) -> tuple[bool, list[str]]:
    """Whether the dataset's files are byte for byte the ones the run recorded (data_files.json);
    (False, []) when the run has no such record."""
    from data_pipeline.content import content_differences

    path = Path(run_dir) / "data_files.json"
    record = read_json(path) if path.is_file() else None
    if not isinstance(record, dict) or not isinstance(record.get("files"), dict):
        return False, []
    current = dict(zip(dataset.paths, dataset.digests))
    # Files the decoder skipped have no digest here; the record lists them like any other.
    skipped = {path for path, _ in dataset.skipped}
    saved = {p: d for p, d in record["files"].items() if p not in skipped}
    diffs = content_differences(saved, current)
    return not diffs, diffs


def load_run_data(run_dir: Path, run: dict[str, Any], *, progress: bool = True) -> tuple[Any, Any]:
    """The run's dataset and its recorded test split, loaded as the search loaded them.

    When the file list's fingerprint differs (a copy has new timestamps) but every file's bytes
    are those recorded in ``data_files.json``, the data is the run's: the dataset is returned
    under the recorded fingerprint, so fold ensembles are rebuilt as usual.

    Raises:
        ResultsError: no split.json (the search never got past loading the data), or the data
            folder is gone.
    """
    import dataclasses

    import data_pipeline

    cfg = run["config"]
    split_file = Path(run_dir) / "split.json"
    if not split_file.is_file():
        raise ResultsError(f"{run_dir} has no split.json: the search did not get as far as "
                           f"splitting the data. Run `run_search.py search --run-dir {run_dir}` "
                           "first.")
    _check_data_folder(Path(run_dir), run)
    dataset = data_pipeline.load_dataset(cfg["data"], image_size=int(cfg["image_size"]),
                                         color_mode=cfg["color_mode"],
                                         positive_class=cfg.get("positive_class"),
                                         progress=progress)
    if run.get("class_names") and list(run["class_names"]) != list(dataset.class_names):
        raise ResultsError(f"the data in {cfg['data']} now has classes {dataset.class_names}, "
                           f"but the run {run_dir} was searched on {run['class_names']}; "
                           "point the run at its original data (--data).")
    if run.get("data_fingerprint") and run["data_fingerprint"] != dataset.fingerprint:
        same, diffs = _same_content(Path(run_dir), dataset)
        if same:  # identical bytes decode to identical arrays: only names or times changed
            dataset = dataclasses.replace(dataset, fingerprint=run["data_fingerprint"])
        else:
            which = f"; first differing files: {', '.join(diffs)}" if diffs else ""
            print(f"warning: the data in {cfg['data']} changed since the search{which}; the "
                  "recorded split is reused by file name.", file=sys.stderr)
    return dataset, data_pipeline.load_split(split_file, dataset)
