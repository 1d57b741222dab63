"""Reading run folders and exports safely: clear errors for missing pieces, safe model loading.

An export is ``<run>/exports/<family>/rank<k>/`` holding ``model.keras``, ``hyperparameters.json``,
``threshold.json``, ``metadata.json`` and ``history.json`` (see ``results/export.py``). Models are
loaded with Keras' ``safe_mode=True`` (no arbitrary code from lambda layers), and an export is
refused when its image size, colour mode or class names differ from the data it is given.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from results.errors import ResultsError
from results.trials import other_runs_hint
from search.store.files import read_json as _read_json
from search.store.files import write_json_atomic
from spaces import FAMILIES

EXPORT_FILES = ("model.keras", "hyperparameters.json", "threshold.json", "metadata.json",
                "history.json")


def read_json(path: Path) -> Any:
    """Reads a JSON file (None when missing), turning a corrupt file into a ResultsError naming it."""
    return _read_json(path, _damaged)


def _damaged(path: Path, err: Exception) -> Any:
    if isinstance(err, OSError):
        raise err
    raise ResultsError(f"{path} is not valid JSON ({err}); the file is damaged: delete it "
                       "and rerun the command that writes it.") from err


def write_json(path: Path, obj: Any) -> None:
    """Writes JSON atomically and durably (:func:`search.store.run_folder.write_json_atomic`: a
    per-process temporary file, fsync, ``os.replace``); NaN and infinities become null."""
    write_json_atomic(Path(path), _clean(obj))


def _clean(obj: Any) -> Any:
    """JSON-safe copy: numpy scalars to Python, NaN/inf to None."""
    if isinstance(obj, dict):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    if hasattr(obj, "item") and not isinstance(obj, (str, bytes)):
        obj = obj.item() if getattr(obj, "ndim", 0) == 0 else obj.tolist()
        return _clean(obj)
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def load_run(run_dir: Path) -> dict[str, Any]:
    """The run's ``run.json``; a missing folder or file says to run ``search`` first.

    The one reader of run.json in ``results/`` (the leaderboard's tolerant
    :func:`results.leaderboard.load_run_config` wraps it).
    """
    run_dir = Path(run_dir)
    if not (run_dir / "run.json").is_file():
        hint = "" if run_dir.exists() else other_runs_hint(run_dir)
        raise ResultsError(
            f"{run_dir} is not a run folder (no run.json).{hint} Start a search first: "
            f"`run_search.py search --data DATA --run-dir {run_dir}` (or `run_search.py run`).")
    return read_json(run_dir / "run.json")


def chosen_epochs(record: dict[str, Any]) -> int:
    """Epochs for the retrain: the median best epoch across the folds.

    ``best_epoch`` counts from 1 (the number of epochs trained when the restored best weights were
    reached), so it is directly the epoch count to retrain for.
    """
    best = [f["best_epoch"] for f in record.get("folds", []) if f.get("best_epoch") is not None]
    if not best:
        return max(1, int(max((f.get("epochs_trained", 1) for f in record.get("folds", [])),
                              default=1)))
    return max(1, int(round(statistics.median(best))))


SINGLE_SUFFIX = "_single"


def export_path(run_dir: Path, family: str, rank: int = 1, *, single: bool = False) -> Path:
    """``<run>/exports/<family>/rank<k>``; ``rank<k>_single`` for the single model exported
    beside an ensemble (so ``compare`` can show both)."""
    return Path(run_dir) / "exports" / family / f"rank{rank}{SINGLE_SUFFIX if single else ''}"


def find_exports(run_dir: Path, rank: int = 1) -> dict[str, Path]:
    """Finished exports of the given rank per family; a clear error when there are none."""
    load_run(run_dir)
    found = {f: export_path(run_dir, f, rank) for f in FAMILIES
             if (export_path(run_dir, f, rank) / "metadata.json").is_file()
             and (export_path(run_dir, f, rank) / "model.keras").is_file()}
    if not found:
        raise ResultsError(
            f"no exported models in {Path(run_dir) / 'exports'}. Export the winners first: "
            f"`run_search.py export --run-dir {run_dir}`.")
    return found


@dataclass
class LoadedExport:
    """An export folder with its model loaded."""

    path: Path
    model: Any
    metadata: dict[str, Any]
    threshold: dict[str, Any]
    hyperparameters: dict[str, Any] = field(default_factory=dict)
    history: dict[str, Any] = field(default_factory=dict)

    @property
    def family(self) -> str:
        return str(self.metadata.get("family", self.path.parent.name))


def load_export(path: Path) -> LoadedExport:
    """Loads an export folder; the model with ``safe_mode=True``.

    Raises:
        ResultsError: the folder is not a finished export, or its model cannot be loaded.
    """
    path = Path(path)
    if not path.exists():
        raise ResultsError(
            f"{path} does not exist. Pass an export folder: RUN/exports/<cnn|ann|transfer>/"
            "rank1 (written by `run_search.py export --run-dir RUN`).")
    missing = [n for n in EXPORT_FILES if not (path / n).is_file()]
    if missing:
        ranks = sorted(p.name for p in path.glob("rank*") if (p / "model.keras").is_file())
        if ranks:
            raise ResultsError(
                f"{path} is a family folder, not one export. Pass one of its exports, e.g. "
                f"{path / ranks[0]} (found: {', '.join(ranks)}).")
        raise ResultsError(
            f"{path} is not a finished export (missing {', '.join(missing)}). Export with "
            "`run_search.py export --run-dir RUN` and pass RUN/exports/<cnn|ann|transfer>/rank1.")
    import keras

    try:  # the models' custom layers must be registered before loading (Keras finds them
        # by name and does not import their module)
        from spaces.preprocess import register_layers

        register_layers()
    except ImportError:
        pass
    try:
        model = keras.saving.load_model(path / "model.keras", safe_mode=True, compile=False)
    except Exception as err:  # noqa: BLE001 - any loader failure is reported the same way
        raise ResultsError(f"cannot load {path / 'model.keras'} ({type(err).__name__}: {err}). "
                           "Keras safe mode refuses lambda layers and unknown code; re-export "
                           "with this version of the project.") from err
    return LoadedExport(path=path, model=model, metadata=read_json(path / "metadata.json"),
                        threshold=read_json(path / "threshold.json"),
                        hyperparameters=read_json(path / "hyperparameters.json"),
                        history=read_json(path / "history.json"))


def check_compatible(metadata: dict[str, Any], *, class_names: list[str] | None = None,
                     image_size: int | None = None, color_mode: str | None = None,
                     source: str = "the data", export: str = "the export") -> None:
    """Refuses data whose class names, image size or colour mode differ from the export's.

    Raises:
        ResultsError: naming both values and what to do.
    """
    problems = []
    if class_names is not None and list(class_names) != list(metadata["class_names"]):
        problems.append(f"class names {list(class_names)} in {source} vs "
                        f"{list(metadata['class_names'])} in {export}")
    if image_size is not None and int(image_size) != int(metadata["image_size"]):
        problems.append(f"image size {image_size} in {source} vs {metadata['image_size']} "
                        f"in {export}")
    if color_mode is not None and color_mode != metadata["color_mode"]:
        problems.append(f"colour mode {color_mode!r} in {source} vs "
                        f"{metadata['color_mode']!r} in {export}")
    if problems:
        raise ResultsError(
            f"{export} does not match {source}: " + "; ".join(problems) + ". Use data with the "
            "same class folders (and the same --image-size/--color-mode as the search), or "
            "export a model from a run on this data.")


def check_model_input(model: Any, metadata: dict[str, Any], export: str) -> None:
    """Refuses an export whose model input differs from its own metadata (a tampered folder)."""
    channels = 1 if metadata["color_mode"] == "grayscale" else 3
    want = (int(metadata["image_size"]), int(metadata["image_size"]), channels)
    got = tuple(model.inputs[0].shape[1:]) if getattr(model, "inputs", None) else None
    if got is not None and tuple(int(d) for d in got if d is not None) != want:
        raise ResultsError(f"the model in {export} takes inputs of shape {got}, but its "
                           f"metadata.json says {want}; the export is inconsistent: re-export it.")
