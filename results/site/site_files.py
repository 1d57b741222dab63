"""A site's records beside an export, and the training data a site's films must not overlap.

``<export>/site_thresholds/<name>.json`` (``calibrate``) and ``<export>/site_checks/<name>.json``
(``check``); the export's own ``threshold.json`` is never written here. Writes are atomic.
"""

from __future__ import annotations

import re
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from results.errors import ResultsError
from results.model_io import read_json, write_json

THRESHOLDS_DIR = "site_thresholds"
CHECKS_DIR = "site_checks"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


def check_site_name(name: str) -> str:
    """A site name usable as a file name: letters, digits, ``_ . -``, at most 64 characters."""
    if not _NAME.match(name or ""):
        raise ResultsError(
            f"site name {name!r} is not usable as a file name: use letters, digits, '_', '.' "
            "or '-' (starting with a letter or digit, at most 64 characters), e.g. --site "
            "north_hospital.")
    return name


def default_site_name(folder: Path) -> str:
    """The local folder's name, made file-safe."""
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", Path(folder).resolve().name).strip("._-")
    return name[:64] or "site"


def now() -> str:
    """The current UTC time, ISO-8601 to the second."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def write_site_threshold(export_dir: Path, name: str, record: dict[str, Any]) -> Path:
    """Writes ``site_thresholds/<name>.json`` atomically; returns its path."""
    path = Path(export_dir) / THRESHOLDS_DIR / f"{check_site_name(name)}.json"
    path.parent.mkdir(exist_ok=True)
    write_json(path, record)
    return path


def write_site_check(export_dir: Path, name: str, record: dict[str, Any]) -> Path:
    """Writes ``site_checks/<name>.json`` atomically; returns its path."""
    path = Path(export_dir) / CHECKS_DIR / f"{check_site_name(name)}.json"
    path.parent.mkdir(exist_ok=True)
    write_json(path, record)
    return path


def site_threshold(export_dir: Path, name: str) -> dict[str, Any]:
    """The site threshold record ``predict --site NAME`` uses.

    Raises:
        ResultsError: no such site, naming the sites calibrated for this export.
    """
    folder = Path(export_dir) / THRESHOLDS_DIR
    path = folder / f"{check_site_name(name)}.json"
    if not path.is_file():
        known = sorted(p.stem for p in folder.glob("*.json")) if folder.is_dir() else []
        raise ResultsError(
            f"no site threshold {path}. Sites calibrated for this export: "
            f"{', '.join(known) or 'none'}. Calibrate one first: `run_search.py calibrate "
            f"--model {export_dir} --data LOCAL_FOLDER --name {name}`.")
    record = read_json(path)
    if not isinstance(record, dict) or record.get("threshold") is None:
        raise ResultsError(f"{path} holds no threshold; run `run_search.py calibrate` again.")
    return record


def site_records(export_dir: Path) -> dict[str, list[dict[str, Any]]]:
    """Every site threshold and check of an export (for the report), by kind."""
    out: dict[str, list[dict[str, Any]]] = {"thresholds": [], "checks": []}
    for kind, folder in (("thresholds", THRESHOLDS_DIR), ("checks", CHECKS_DIR)):
        for path in sorted((Path(export_dir) / folder).glob("*.json")):
            record = read_json(path)
            if isinstance(record, dict):
                out[kind].append(dict(record, site=path.stem))
    return out


def run_dir_of(export_dir: Path, metadata: dict[str, Any]) -> Path:
    """The export's run folder: the one holding it (``RUN/exports/<family>/rank<k>``) when it is
    a run folder, so a run moved as a whole still works; else the one metadata.json records."""
    parents = Path(export_dir).resolve().parents
    holder = parents[2] if len(parents) > 2 else Path(export_dir)
    if (holder / "run.json").is_file() or not metadata.get("run_dir"):
        return holder
    return Path(metadata["run_dir"])


def training_digests(export_dir: Path, metadata: dict[str, Any]
                     ) -> tuple[dict[str, str], set[str]] | None:
    """``({sha256: path} of the run's training files, {sha256} of its held-out test files})``.

    None when the run recorded no ``data_files.json`` (an older run, or the run folder is not
    here), so overlap cannot be checked.
    """
    run_dir = run_dir_of(export_dir, metadata)
    record = read_json(run_dir / "data_files.json") if (run_dir / "data_files.json").is_file() \
        else None
    if not isinstance(record, dict) or not isinstance(record.get("files"), dict):
        return None
    split = read_json(run_dir / "split.json") if (run_dir / "split.json").is_file() else None
    test_paths = set((split or {}).get("test") or [])
    train = {d: p for p, d in record["files"].items() if d and p not in test_paths}
    test = {d for p, d in record["files"].items() if d and p in test_paths}
    return train, test - set(train)


def refuse_overlap(local: dict[str, str], train: dict[str, str], folder: Path) -> None:
    """Refuses local files whose bytes are training files of the export.

    Args:
        local: ``{relative path: sha256}`` of the local films.
        train: ``{sha256: path}`` of the training files.
        folder: the local folder, for the message.
    """
    hits = [(p, train[d]) for p, d in sorted(local.items()) if d in train]
    if hits:
        shown = "; ".join(f"{p} = {t}" for p, t in hits[:3])
        more = f" and {len(hits) - 3} more" if len(hits) > 3 else ""
        raise ResultsError(
            f"{len(hits)} film(s) in {folder} are byte-identical to films the export was "
            f"trained on ({shown}{more}). A site's films must be new to the model: its scores "
            "on training films are in-sample and would make the site's threshold and check "
            "optimistic. Remove them from the folder and run again.")
