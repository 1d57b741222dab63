"""The run folder's own record: run.json, the data it was run on, and the resume checks.

Layout and schemas are fixed in ARCHITECTURE.md ("Run folder"). Everything is written through
``search.store.files`` (atomically, so a ``kill -9`` never leaves half a file); its reader and
writers are imported here too, as ``run_folder.read_json`` etc., for the modules that use both.
"""

from __future__ import annotations

import importlib.metadata
import json
import platform
import sys
from pathlib import Path
from typing import Any

from search.errors import SearchError
from search.store.files import now_iso, read_json, write_json_atomic

RUN_JSON = "run.json"
SPLIT_JSON = "split.json"
LOG_NAME = "search.log"
DATA_FILES_JSON = "data_files.json"  # {"data", "content_fingerprint", "files": {path: sha256}}

# What a resume must share with the saved run. max_trials and time_budget_min may change
# (raising --max-trials extends a search); everything else changes what a trial means.
COMPARED_KEYS = ("model", "tuner", "folds", "max_epochs", "min_epochs", "patience", "objective",
                 "image_size",
                 "color_mode", "positive_class", "space", "seed", "test_fraction", "max_params",
                 "max_gflops", "weights")



def versions() -> dict[str, str]:
    """Library versions for run.json (without importing TensorFlow)."""
    import keras

    out = {"python": platform.python_version(), "platform": platform.platform(),
           "keras": keras.__version__, "backend": keras.backend.backend()}
    for dist in ("keras-tuner", "numpy", "tensorflow", "jax", "torch", "pillow"):
        try:
            out[dist.replace("-", "_")] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            pass
    return out


def config_differences(saved: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """Names the compared keys whose values differ, as ``key: saved -> current`` lines."""
    diffs = []
    for key in COMPARED_KEYS:
        a, b = saved.get(key), current.get(key)
        if key == "weights":
            diffs.extend(weights_differences(saved, current))
            continue
        if key == "space":  # the effective dimensions matter, not where the file was
            a, b = _space_dims(a), _space_dims(b)
            if isinstance(a, dict) and isinstance(b, dict):
                # A family added to the service after the run was saved (transfer) was not
                # searched by it, so its dimensions cannot differ.
                b = {k: v for k, v in b.items() if k in a}
        if json.dumps(a, sort_keys=True, default=str) != json.dumps(b, sort_keys=True, default=str):
            if key == "space" and isinstance(a, dict) and isinstance(b, dict):
                diffs.extend(space_differences(a, b))
            elif key == "space":  # one side has no space: say so, never dump the other
                diffs.append(f"--space: saved {_space_text(saved.get(key))}, now "
                             f"{_space_text(current.get(key))}")
            else:
                diffs.append(f"{option_name(key)}: saved {cli_value(a)}, now {cli_value(b)}")
    return diffs


def weights_differences(saved: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """Whether the backbone weights differ, matched by content (``weights_sha256``) for files.

    A byte-identical copy at a new path is the run's file (the new path is recorded on
    resume); a different file, even at the same path, is not: trials of one search must start
    from the same weights. A run saved before ``weights_sha256`` existed is matched by path.
    """
    a, b = saved.get("weights"), current.get("weights")
    keywords = (None, "imagenet", "none")
    da, db = saved.get("weights_sha256"), current.get("weights_sha256")
    if a in keywords or b in keywords or not da or not db:
        return [] if a == b else [f"--weights: saved {cli_value(a)}, now {cli_value(b)}"]
    if da == db:
        return []
    where = (f"the file {b} is not the one the run was searched with" if a == b else
             f"{b} is not a copy of the run's file {a}")
    return [f"--weights: {where} (sha256 saved {da[:12]}..., now {db[:12]}...); trials of one "
            "search must start from the same backbone weights, so give --weights the run's "
            "file (any byte-identical copy will do)"]


def option_name(key: str) -> str:
    """The ``search`` option that sets run.json's ``config`` key (``max_epochs`` ->
    ``--max-epochs``): refusals name what the user types, not the file's keys."""
    return {"time_budget_min": "--time-budget", "space": "--space"}.get(
        key, "--" + key.replace("_", "-"))


def cli_value(value: Any) -> str:
    """A saved option value as the user would type it (``None``: not given)."""
    if value is None:
        return "not given (the default)"
    if isinstance(value, str):
        return value
    return json.dumps(value, default=str) if isinstance(value, (dict, list)) else str(value)


# The fields of a dimension that change what a trial means (help text and names do not).
_DIM_FIELDS = ("type", "default", "min", "max", "step", "sampling", "values", "fixed")


def space_differences(saved: dict[str, Any], current: dict[str, Any],
                      limit: int = 8) -> list[str]:
    """Names each changed search-space dimension, as ``space cnn.dense_units: saved ..., now
    ...`` lines (at most ``limit``, then a count), so a refused resume says what to restore.

    Args:
        saved: run.json's ``config.space`` (``{family: {dimension: {...}}}``).
        current: the same for the current command.
        limit: how many dimensions to name before summarising the rest.
    """
    lines: list[str] = []
    for family in sorted(set(saved) | set(current)):
        a, b = saved.get(family), current.get(family)
        if not isinstance(a, dict) or not isinstance(b, dict):
            if a != b:
                lines.append(f"--space {family}: saved {cli_value(a)}, now {cli_value(b)}")
            continue
        for name in sorted(set(a) | set(b)):
            da, db = a.get(name), b.get(name)
            if da == db:
                continue
            if not isinstance(da, dict) or not isinstance(db, dict):
                lines.append(f"space {family}.{name}: saved {_dim_text(da)}, now {_dim_text(db)}")
                continue
            changed = [f for f in _DIM_FIELDS if da.get(f) != db.get(f)]
            if changed:
                lines.append(f"space {family}.{name}: saved "
                             f"{', '.join(f'{f}={da.get(f)!r}' for f in changed)}, now "
                             f"{', '.join(f'{f}={db.get(f)!r}' for f in changed)}")
    if not lines:
        return ["space: the saved and current spaces differ in a detail (compare "
                "run.json's config.space with `run_search.py space`)"]
    if len(lines) > limit:
        lines = lines[:limit] + [f"and {len(lines) - limit} more space dimension(s)"]
    return lines


def _space_text(space: Any) -> str:
    """A search space in a sentence (``the space of a.toml: 24 cnn, 20 ann dimensions``)."""
    if not isinstance(space, dict):
        return cli_value(space)
    counts = ", ".join(f"{len(v)} {k}" for k, v in _space_dims(space).items()
                       if isinstance(v, dict))
    source = space.get("source")
    return f"the space {'of ' + str(source) if source else 'given'} ({counts} dimensions)"


def _dim_text(dim: Any) -> str:
    if dim is None:
        return "(absent)"
    if isinstance(dim, dict):
        return ", ".join(f"{f}={dim.get(f)!r}" for f in _DIM_FIELDS if dim.get(f) is not None)
    return repr(dim)


def _space_dims(space: Any) -> Any:
    if isinstance(space, dict):
        return {k: v for k, v in space.items() if k not in ("source", "overrides")}
    return space


def early_weights_refusal(run_dir: Path, weights: str | None, overwrite: bool) -> None:
    """Refuses, before any backend loads, a resume whose ``--weights`` file is not the run's.

    The whole resume check (:func:`check_resume`) needs the data and the space, which the engine
    loads after Keras; a weights file is matched by its sha256 alone (NumPy-free, seconds
    saved), so this mismatch is told at once. Nothing to check for a new run, ``--overwrite``,
    or the ``imagenet`` / ``none`` keywords (check_resume compares those).

    Raises:
        SearchError: naming the difference and the ways out, as check_resume does.
    """
    if overwrite or weights in (None, "imagenet", "none"):
        return
    run = read_json(Path(run_dir) / RUN_JSON)
    saved = (run or {}).get("config") or {}
    if not saved.get("weights_sha256") or not Path(weights).is_file():
        return  # an older run (matched by path later) or a missing file (its own error)
    from spaces.backbones import weights_digest

    path = str(Path(weights).expanduser().resolve())
    diffs = weights_differences(saved, {"weights": path,
                                        "weights_sha256": weights_digest(path)})
    if diffs:
        raise SearchError(
            f"The run folder {run_dir} holds a search with a different configuration or data, "
            f"so it cannot be resumed with this command: {'; '.join(diffs)}. Either rerun with "
            "the saved settings to resume, add --overwrite to delete that run and start "
            "afresh, or choose a new --run-dir.")


def check_resume(run_dir: Path, run: dict[str, Any], config: dict[str, Any],
                 files_fingerprint: str) -> None:
    """Refuses a resume whose configuration or data differ from the saved run.

    Raises:
        SearchError: naming each difference and the two ways out.
    """
    if not isinstance(run.get("config"), dict) or not run["config"]:
        raise SearchError(
            f"The run folder {run_dir} has a {RUN_JSON} that records no search settings (a "
            "search was stopped before it saved them, or the folder was moved or deleted "
            "while a search ran), so nothing says which settings its trials used and it "
            "cannot be resumed. Add --overwrite to delete that run folder and start afresh, "
            "or choose a new --run-dir.")
    diffs = config_differences(run.get("config", {}), config)
    saved_fp = run.get("data_files_fingerprint")
    data_diffs = []
    if saved_fp is not None and saved_fp != files_fingerprint:
        data_diffs = data_differences(run_dir, run, config.get("data"))
    if diffs or data_diffs:
        fix = ("Either rerun with the saved settings to resume" if diffs else
               "Either point --data at the data the run used (or restore those files) to resume")
        raise SearchError(
            f"The run folder {run_dir} holds a search with a different configuration or data, "
            f"so it cannot be resumed with this command: {'; '.join(diffs + data_diffs)}. "
            f"{fix}, add --overwrite to delete that run and start afresh, or choose a new "
            f"--run-dir."
        )


def record_data_files(run_dir: Path, data: str | Path,
                      files: dict[str, str] | None = None) -> None:
    """Writes ``data_files.json`` (every image file's sha256) once per run.

    Content, not names or timestamps, then decides whether the data changed: a resume, export
    or compare on a byte-identical copy (``cp -r``, a move to another disk) goes on.

    Args:
        run_dir: The run folder.
        data: The data folder.
        files: ``{relative path: sha256}`` already computed (the loaded dataset's
            ``file_digests``, from the decoder's pass), so a new run reads each file once;
            None: hash the folder here.
    """
    path = Path(run_dir) / DATA_FILES_JSON
    if path.exists():
        return
    from data_pipeline.content import content_digests, content_fingerprint

    files = content_digests(data) if files is None else dict(files)
    write_json_atomic(path, {"data": str(data), "content_fingerprint": content_fingerprint(files),
                             "files": files})


def data_differences(run_dir: Path, run: dict[str, Any], data: str | Path | None) -> list[str]:
    """Why the data in ``data`` is not the run's, as lines for a refusal; [] when the file
    list differs only in timestamps or location and every file's bytes are the run's."""
    saved_data = (run.get("config") or {}).get("data")
    record = read_json(Path(run_dir) / DATA_FILES_JSON)
    if not record or not isinstance(record.get("files"), dict) or data is None:
        return [f"data: the files in {data} differ from those the run used ({saved_data}) in "
                f"names, sizes or modification times (this run predates {DATA_FILES_JSON}, so "
                "contents cannot be compared)"]
    from data_pipeline.content import content_differences, content_digests

    changed = content_differences(record["files"], content_digests(data))
    if not changed:
        return []
    return [f"data: files in {data} differ by content from those the run used ({saved_data}), "
            f"first: {', '.join(changed)}"]


def new_run_record(command: list[str], config: dict[str, Any], *, data_fingerprint: str,
                   files_fingerprint: str, class_names: list[str]) -> dict[str, Any]:
    """Builds the run.json content for a new run (status ``running``)."""
    stamp = now_iso()
    return {"command": command, "config": config, "data_fingerprint": data_fingerprint,
            "data_files_fingerprint": files_fingerprint, "class_names": list(class_names),
            "versions": versions(), "created": stamp, "updated": stamp, "status": "running"}


def update_run(run_dir: Path, **fields: Any) -> dict[str, Any]:
    """Updates fields of run.json (e.g. ``status``) and its ``updated`` stamp."""
    path = Path(run_dir) / RUN_JSON
    run = read_json(path) or {}
    run.update(fields)
    run["updated"] = now_iso()
    write_json_atomic(path, run)
    return run


def resume_command(argv: list[str] | None = None) -> str:
    """The command that resumes this search: the same command line, without --overwrite."""
    args = list(argv if argv is not None else sys.argv)
    args = [a for a in args if a != "--overwrite"]
    if args and args[0].endswith("__main__.py"):  # started as `python -m search`
        args = ["python", "-m", Path(args[0]).parent.name, *args[1:]]
    elif args and args[0].endswith(".py"):
        args = ["python", *args]
    return " ".join(_quote(a) for a in args)


def _quote(arg: str) -> str:
    import shlex

    return shlex.quote(arg)


# What a trial's numbers mean beyond run.json's options, resolved on the machine that trains:
# the Keras backend, the dtype policy (mixed precision) and the data-parallel replicas (the
# global batch is batch_size x replicas). Written by the first process that trains in the run
# folder (a single search, or the first worker of a distributed one); every later session and
# worker must match it. --jit-compile is left out on purpose: XLA compiles the same
# computation, so it changes speed, not what a trial means.
RUNTIME_JSON = "runtime.json"
_RUNTIME_FIX = {
    "backend": "set KERAS_BACKEND={saved} before the command",
    "dtype_policy": "pass --mixed-precision {flag}",
    "replicas": "pass --data-parallel {saved} on a machine with that many GPUs (or off for 1)",
}


# What the user sets for each runtime.json key (refusals name these, not the file's keys).
_RUNTIME_LABEL = {"backend": "KERAS_BACKEND", "dtype_policy": "--mixed-precision (dtype policy)",
                  "replicas": "--data-parallel (replicas)"}


def check_runtime(run_dir: Path, current: dict[str, Any], *, new_run: bool = False) -> None:
    """Records the run's runtime (:data:`RUNTIME_JSON`) or refuses one that differs from it.

    Args:
        run_dir: The run folder.
        current: ``{"backend", "dtype_policy", "replicas"}`` of this process.
        new_run: The run starts afresh: record ``current`` whatever an earlier, failed start
            left behind.

    Raises:
        SearchError: naming each difference and the option that restores it.
    """
    path = Path(run_dir) / RUNTIME_JSON
    saved = None if new_run else read_json(path)
    if saved is None:
        write_json_atomic(path, current)
        return
    diffs = []
    for key, fix in _RUNTIME_FIX.items():
        a, b = saved.get(key), current.get(key)
        if a is not None and a != b:
            flag = {"float32": "off"}.get(str(a), str(a).removeprefix("mixed_"))
            diffs.append(f"{_RUNTIME_LABEL[key]}: saved {a}, now {b} "
                         f"({fix.format(saved=a, flag=flag)})")
    if diffs:
        raise SearchError(
            f"The run folder {run_dir} was searched with another numeric setup, so its trials "
            f"would not compare with new ones: {'; '.join(diffs)}. Resume with the saved "
            "setup, add --overwrite to start afresh, or choose a new --run-dir.")
