"""TensorBoard event files for every search, on every Keras backend, without TensorFlow.

Layout under the TensorBoard folder (default ``RUN_DIR/tensorboard``), the one Keras'
``TensorBoard`` callback uses for a fit, one level per trial and fold::

    <family>/trial_<id>/                 one HParams session per trial: its hyperparameters,
                                         ``status``, ``stop_reason``, diagnosis, the fold mean
                                         (``cv/mean_*``) and std (``cv/std_*``) of every metric
                                         and probe over its finished folds, ``cv/folds_finished``
    <family>/trial_<id>/fold<k>/train       epoch_loss, epoch_auc, ..., epoch_learning_rate
    <family>/trial_<id>/fold<k>/validation  epoch_loss, epoch_auc, ...

``tensorboard --logdir RUN_DIR/tensorboard`` shows the curves in Scalars and every trial of both
families in the HParams dashboard (table, parallel coordinates, scatter).

Why not ``tf.summary`` or Keras' callback: the GPU machines run JAX or PyTorch without
TensorFlow. Event files are TFRecord files of ``Event`` protobufs; TensorBoard ships the
protobufs (``tensorboard.compat.proto``), the HParams plugin's messages and the record framing
(``RecordWriter`` with its pure-Python CRC), so writing them needs only the ``tensorboard``
package that ``requirements.txt`` already holds, and no TensorFlow import on any backend.

Statuses: the HParams plugin knows four (``Status`` in its ``api.proto``): success, failure,
running and unknown. A completed trial is a success and a failed one a failure; a pruned trial
(a ladder rung, or the cost rule) and one the search stopped before it finished (time budget,
Ctrl-C, a kill) are neither, and are not running either, so they are unknown, and the
``status`` hyperparameter (``COMPLETED``, ``PRUNED``, ``STOPPED``, ``FAILED``; the leaderboard's
words, ``STOPPED`` where it says ``RUNNING`` with no search holding the run) and ``stop_reason``
say which and why.

Resume and kill safety: a fold that is trained again starts by deleting its folder, so its
partial curves are replaced, not doubled; a trial's session file is rewritten whole when the
trial ends or the search stops inside it, always in the trial's folder (the plugin names a
session, and its group, after that run), so a resumed search has exactly one session per trial.
A stopped trial's session has no end record: TensorBoard keeps the first summary metadata it
reads for a run, so a server left open across the resume then takes the final status from the
new file (its hyperparameters, ``status`` included, refresh when the server restarts).
Distributed workers write the trials they run into the shared folder (trial folders never
overlap).
"""

from __future__ import annotations

import itertools
import math
import os
import re
import shutil
import socket
import time
from pathlib import Path
from typing import Any

_COUNTER = itertools.count()
EVENTS_PREFIX = "events.out.tfevents."
# The ``status`` hyperparameter of a session: the cv.json status, STOPPED for a trial the search
# stopped inside (cv.json still says RUNNING, ready to resume).
STATUSES = ("COMPLETED", "PRUNED", "STOPPED", "FAILED")
# Hyperparameters every session has besides the searched dimensions.
SESSION_HPARAMS = ("family", "diagnosis", "status", "stop_reason")


def default_dir(run_dir: Path) -> Path:
    """``RUN_DIR/tensorboard``."""
    return Path(run_dir) / "tensorboard"


class EventWriter:
    """Appends ``Event`` records to one new event file in ``logdir`` (synchronously)."""

    def __init__(self, logdir: Path) -> None:
        from tensorboard.compat.proto import event_pb2
        from tensorboard.summary.writer.record_writer import RecordWriter

        self._event_pb2 = event_pb2
        logdir = Path(logdir)
        logdir.mkdir(parents=True, exist_ok=True)
        # TensorBoard reads files whose name contains "tfevents"; pid and a counter keep the
        # names of concurrent writers (workers, successive folds) apart.
        name = (f"{EVENTS_PREFIX}{int(time.time())}.{socket.gethostname()}.{os.getpid()}."
                f"{next(_COUNTER)}")
        self.path = logdir / name
        self._fh = open(self.path, "wb")
        self._records = RecordWriter(self._fh)
        self._write(event_pb2.Event(wall_time=time.time(), file_version="brain.Event:2"))

    def _write(self, event: Any) -> None:
        self._records.write(event.SerializeToString())

    def summary(self, summary: Any, step: int = 0) -> None:
        """Writes one ``Summary`` protobuf at ``step``."""
        self._write(self._event_pb2.Event(wall_time=time.time(), step=int(step),
                                          summary=summary))

    def scalars(self, values: dict[str, float], step: int) -> None:
        """Writes ``{tag: value}`` as scalar summaries at ``step`` (non-finite values skipped)."""
        from tensorboard.compat.proto import summary_pb2

        summary = summary_pb2.Summary()
        for tag, value in values.items():
            if value is not None and math.isfinite(float(value)):
                summary.value.add(tag=tag, simple_value=float(value))
        if summary.value:
            self.summary(summary, step)

    def close(self) -> None:
        self._fh.flush()
        self._fh.close()


def fold_dir(tb_dir: Path, family: str, trial_id: str, fold: int) -> Path:
    """``<tb_dir>/<family>/trial_<id>/fold<k>``."""
    return Path(tb_dir) / family / f"trial_{trial_id}" / f"fold{fold}"


def make_fold_callback(tb_dir: Path, family: str, trial_id: str, fold: int) -> Any:
    """A Keras callback writing the fold's epoch scalars (see the module docstring)."""
    import keras

    class FoldScalars(keras.callbacks.Callback):
        """Per-epoch train and validation scalars of one fold fit, Keras' tag names."""

        def __init__(self) -> None:
            super().__init__()
            self.root = fold_dir(tb_dir, family, trial_id, fold)
            self.writers: dict[str, EventWriter] = {}

        def on_train_begin(self, logs=None) -> None:
            # A fold trained again (resume after a kill) replaces its partial curves.
            shutil.rmtree(self.root, ignore_errors=True)
            self.writers = {"train": EventWriter(self.root / "train"),
                            "validation": EventWriter(self.root / "validation")}

        def on_epoch_end(self, epoch, logs=None) -> None:
            train, val = {}, {}
            for key, value in (logs or {}).items():
                try:
                    value = float(value)
                except (TypeError, ValueError):
                    continue
                if key.startswith("val_"):
                    val["epoch_" + key[4:]] = value
                else:
                    train["epoch_" + ("learning_rate" if key == "lr" else key)] = value
            if "epoch_learning_rate" not in train:  # Keras logs it only under a scheduler
                train["epoch_learning_rate"] = _learning_rate(self.model)
            # Keras' epoch index is absolute (initial_epoch included): Hyperband rounds line up.
            self.writers["train"].scalars(train, epoch)
            self.writers["validation"].scalars(val, epoch)

        def on_train_end(self, logs=None) -> None:
            for writer in self.writers.values():
                writer.close()

    return FoldScalars()


def _learning_rate(model: Any) -> float | None:
    try:
        import keras

        return float(keras.ops.convert_to_numpy(model.optimizer.learning_rate))
    except Exception:  # noqa: BLE001 - a schedule object or no optimizer: leave it out
        return None


def _hparam_value(value: Any) -> Any:
    if isinstance(value, (bool, int, float, str)):
        return value
    return str(value)


def session_status(cv: dict[str, Any], stop_reason: str | None = None) -> tuple[str, str]:
    """The session's ``status`` hyperparameter (one of :data:`STATUSES`) and ``stop_reason``.

    Args:
        cv: The trial's ``cv.json`` record.
        stop_reason: Why the search stopped inside a trial that has not ended (cv.json status
            ``RUNNING``); a generic text when None.
    """
    status = str(cv.get("status"))
    if status == "COMPLETED":
        return status, "-"
    if status == "SUSPENDED":  # waits at a ladder rung; a resumed search may finish it
        return "STOPPED", str(cv.get("reason") or "suspended at a ladder rung")
    if status in ("FAILED", "PRUNED"):
        return status, str(cv.get("reason") or status.lower())
    return "STOPPED", stop_reason or stopped_reason("stopped", len(cv.get("folds") or []))


def stopped_reason(cause: str, folds_done: int, n_folds: int | None = None) -> str:
    """``time budget spent after 2 of 3 fold(s); resuming the search finishes it``."""
    of = f" of {n_folds}" if n_folds else ""
    return f"{cause} after {folds_done}{of} fold(s); resuming the search finishes it"


def session_summaries(hparams: dict[str, Any], status: str) -> tuple[Any, Any | None]:
    """The HParams plugin's ``session_start_info`` and ``session_end_info`` summaries.

    Built from the plugin's own protobufs and metadata helpers, as
    ``tensorboard.plugins.hparams.summary`` builds them, minus its TensorFlow import.

    Args:
        hparams: name -> bool, int, float or str (other values become strings).
        status: One of :data:`STATUSES`: ``COMPLETED`` ends the session as a success,
            ``FAILED`` as a failure, ``PRUNED`` with the plugin's unknown status; ``STOPPED``
            has no end record (unknown too; see the module docstring for why).

    Returns:
        The start summary, and the end summary or None.
    """
    from tensorboard.compat.proto import summary_pb2
    from tensorboard.plugins.hparams import api_pb2, metadata, plugin_data_pb2

    start = plugin_data_pb2.SessionStartInfo(start_time_secs=time.time())
    for name, value in hparams.items():
        value = _hparam_value(value)
        if isinstance(value, bool):
            start.hparams[name].bool_value = value
        elif isinstance(value, (int, float)):
            start.hparams[name].number_value = float(value)
        else:
            start.hparams[name].string_value = value

    def wrap(tag: str, data: Any) -> Any:
        summary = summary_pb2.Summary()
        summary.value.add(tag=tag, metadata=metadata.create_summary_metadata(data),
                          tensor=metadata.NULL_TENSOR)
        return summary

    start_summary = wrap(metadata.SESSION_START_INFO_TAG,
                         plugin_data_pb2.HParamsPluginData(session_start_info=start))
    if status == "STOPPED":
        return start_summary, None
    # Never STATUS_RUNNING: a session is written when its trial has ended or the search stopped.
    code = {"COMPLETED": api_pb2.STATUS_SUCCESS, "FAILED": api_pb2.STATUS_FAILURE}.get(
        status, api_pb2.STATUS_UNKNOWN)
    end = plugin_data_pb2.SessionEndInfo(status=code, end_time_secs=time.time())
    return start_summary, wrap(metadata.SESSION_END_INFO_TAG,
                               plugin_data_pb2.HParamsPluginData(session_end_info=end))


def trial_session_dir(tb_dir: Path, family: str, trial_id: str) -> Path:
    """``<tb_dir>/<family>/trial_<id>``: the session's run, hence its name and group."""
    return Path(tb_dir) / str(family) / f"trial_{trial_id}"


def write_trial_session(tb_dir: Path, cv: dict[str, Any], stop_reason: str | None = None
                        ) -> Path:
    """Writes (or rewrites) the HParams session of one trial from its ``cv.json``.

    Args:
        tb_dir: The TensorBoard folder.
        cv: The trial's record; its fold means and stds (over the folds that finished, as the
            leaderboard shows them) become the session's ``cv/`` metrics.
        stop_reason: For a trial the search stopped inside (cv.json status ``RUNNING``): why
            (:func:`stopped_reason`).

    Returns:
        The event file written.
    """
    trial_dir = trial_session_dir(tb_dir, cv["family"], cv["trial_id"])
    trial_dir.mkdir(parents=True, exist_ok=True)
    for old in trial_dir.glob(EVENTS_PREFIX + "*"):  # one session per trial, also on resume
        old.unlink()
    hparams = {k: v for k, v in (cv.get("hyperparameters") or {}).items() if v is not None}
    status, reason = session_status(cv, stop_reason)
    hparams.update(family=cv["family"], diagnosis=cv.get("diagnosis") or "-", status=status,
                   stop_reason=reason)
    for key, value in (cv.get("hyperband") or {}).items():
        if key in ("epochs", "round"):
            hparams[f"tuner/{key}"] = value
    start, end = session_summaries(hparams, status)
    writer = EventWriter(trial_dir)
    try:
        writer.summary(start)
        metrics = {f"cv/mean_{k}": v for k, v in (cv.get("mean") or {}).items()}
        metrics.update({f"cv/std_{k}": v for k, v in (cv.get("std") or {}).items()})
        metrics["cv/folds_finished"] = len(cv.get("folds") or [])
        writer.scalars(metrics, 0)
        if end is not None:
            writer.summary(end)
    finally:
        writer.close()
    return writer.path


def with_fold_files(cv: dict[str, Any], trial_dir: Path) -> dict[str, Any]:
    """A trial that has not ended, with its folds and their means read from its ``fold<k>.json``
    files when those are ahead of ``cv.json``: a stop can land between a fold's record and the
    cv.json update, and the leaderboard counts the fold files of such a trial too.

    Args:
        cv: The trial's ``cv.json`` record (returned as it is once the trial has ended).
        trial_dir: The trial's folder.
    """
    if cv.get("status") in ("COMPLETED", "FAILED", "PRUNED"):
        return cv
    from search.store.fold_records import fold_mean_std
    from search.store.files import read_json

    folds = []
    for path in sorted(Path(trial_dir).glob("fold*.json")):
        if not re.fullmatch(r"fold\d+\.json", path.name):
            continue
        record = read_json(path, on_damage=lambda _path, _err: None)
        if isinstance(record, dict) and isinstance(record.get("best"), dict):
            folds.append(record)
    if len(folds) <= len(cv.get("folds") or []):
        return cv
    mean, std = fold_mean_std([f["best"] for f in folds])
    return {**cv, "mean": mean, "std": std,
            "folds": [{"fold": f.get("fold"), **f["best"]} for f in folds]}


def write_sessions(tb_dir: Path, family_dir: Path) -> int:
    """Rewrites the session of every trial of a family from its ``cv.json``.

    Run when a search starts, so the dashboard lists every trial the leaderboard shows: trials
    a killed search left behind (cv.json ``RUNNING``, no session) appear as ``STOPPED``, and
    folders written by older versions get today's statuses.

    Returns:
        The number of sessions written.
    """
    from search.store.files import read_json

    n = 0
    for path in sorted(Path(family_dir).glob("trial_*/cv.json")):
        # A damaged record is skipped here: the tuner repairs or reports it when it loads.
        cv = read_json(path, on_damage=lambda _path, _err: None)
        if isinstance(cv, dict) and cv.get("trial_id") is not None and cv.get("family"):
            write_trial_session(tb_dir, with_fold_files(cv, path.parent))
            n += 1
    return n


def write_experiment(tb_dir: Path, hparam_names: list[str], metric_tags: list[str]) -> Path:
    """Writes (or rewrites) the HParams experiment summary at the TensorBoard folder's root.

    Without it the dashboard would infer a metric from every scalar tag of every session's
    sub-runs (each fold's epoch curves); with it, it shows the ``cv/`` metrics named here, and
    the hyperparameters named here plus :data:`SESSION_HPARAMS` (``status`` with its values, so
    the dashboard can filter on it).
    """
    from tensorboard.compat.proto import summary_pb2
    from tensorboard.plugins.hparams import api_pb2, metadata, plugin_data_pb2

    root = Path(tb_dir)
    root.mkdir(parents=True, exist_ok=True)
    for old in root.glob(EVENTS_PREFIX + "*"):
        old.unlink()
    infos = []
    for name in sorted(set(hparam_names) | set(SESSION_HPARAMS)):
        info = api_pb2.HParamInfo(name=name)
        if name == "status":  # a discrete domain: the dashboard offers one checkbox per value
            info.type = api_pb2.DATA_TYPE_STRING
            info.domain_discrete.extend(STATUSES)
        infos.append(info)
    experiment = api_pb2.Experiment(
        time_created_secs=time.time(), hparam_infos=infos,
        metric_infos=[api_pb2.MetricInfo(name=api_pb2.MetricName(tag=t)) for t in metric_tags])
    summary = summary_pb2.Summary()
    summary.value.add(tag=metadata.EXPERIMENT_TAG,
                      metadata=metadata.create_summary_metadata(
                          plugin_data_pb2.HParamsPluginData(experiment=experiment)),
                      tensor=metadata.NULL_TENSOR)
    writer = EventWriter(root)
    try:
        writer.summary(summary)
    finally:
        writer.close()
    return writer.path


def experiment_metrics(objective: str) -> list[str]:
    """The ``cv/`` tags the dashboard shows: fold means of every validation metric and probe,
    the fold std of the objective, and how many folds those cover."""
    from spaces.metrics import METRIC_NAMES, PROBE_OBJECTIVES

    means = [f"val_{m}" for m in METRIC_NAMES] + list(PROBE_OBJECTIVES) + list(METRIC_NAMES)
    tags = [f"cv/mean_{m}" for m in means]
    return [f"cv/mean_{objective}"] + [t for t in tags if t != f"cv/mean_{objective}"] + [
        f"cv/std_{objective}", "cv/folds_finished"]
