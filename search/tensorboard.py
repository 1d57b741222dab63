"""TensorBoard event files for every search, on every Keras backend, without TensorFlow.

Layout under the TensorBoard folder (default ``RUN_DIR/tensorboard``), the one Keras'
``TensorBoard`` callback uses for a fit, one level per trial and fold::

    <family>/trial_<id>/                 one HParams session per trial: its hyperparameters,
                                         status, diagnosis, and the fold mean (``cv/mean_*``)
                                         and std (``cv/std_*``) of every metric and probe
    <family>/trial_<id>/fold<k>/train       epoch_loss, epoch_auc, ..., epoch_learning_rate
    <family>/trial_<id>/fold<k>/validation  epoch_loss, epoch_auc, ...

``tensorboard --logdir RUN_DIR/tensorboard`` shows the curves in Scalars and every trial of both
families in the HParams dashboard (table, parallel coordinates, scatter).

Why not ``tf.summary`` or Keras' callback: the GPU machines run JAX or PyTorch without
TensorFlow. Event files are TFRecord files of ``Event`` protobufs; TensorBoard ships the
protobufs (``tensorboard.compat.proto``), the HParams plugin's messages and the record framing
(``RecordWriter`` with its pure-Python CRC), so writing them needs only the ``tensorboard``
package that ``requirements.txt`` already holds, and no TensorFlow import on any backend.

Resume and kill safety: a fold that is trained again starts by deleting its folder, so its
partial curves are replaced, not doubled; a trial's session file is rewritten whole when the
trial ends, so a resumed search has exactly one session per trial. Distributed workers write
the trials they run into the shared folder (trial folders never overlap).
"""

from __future__ import annotations

import itertools
import math
import os
import shutil
import socket
import time
from pathlib import Path
from typing import Any

_COUNTER = itertools.count()
EVENTS_PREFIX = "events.out.tfevents."


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


def session_summaries(hparams: dict[str, Any], status: str) -> tuple[Any, Any]:
    """The HParams plugin's ``session_start_info`` and ``session_end_info`` summaries.

    Built from the plugin's own protobufs and metadata helpers, as
    ``tensorboard.plugins.hparams.summary`` builds them, minus its TensorFlow import.

    Args:
        hparams: name -> bool, int, float or str (other values become strings).
        status: ``COMPLETED`` (success), ``FAILED`` (failure) or anything else (running).
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
    code = {"COMPLETED": api_pb2.STATUS_SUCCESS, "FAILED": api_pb2.STATUS_FAILURE}.get(
        status, api_pb2.STATUS_RUNNING)
    end = plugin_data_pb2.SessionEndInfo(status=code, end_time_secs=time.time())

    def wrap(tag: str, data: Any) -> Any:
        summary = summary_pb2.Summary()
        summary.value.add(tag=tag, metadata=metadata.create_summary_metadata(data),
                          tensor=metadata.NULL_TENSOR)
        return summary

    return (wrap(metadata.SESSION_START_INFO_TAG,
                 plugin_data_pb2.HParamsPluginData(session_start_info=start)),
            wrap(metadata.SESSION_END_INFO_TAG,
                 plugin_data_pb2.HParamsPluginData(session_end_info=end)))


def write_trial_session(tb_dir: Path, cv: dict[str, Any]) -> Path:
    """Writes (or rewrites) the HParams session of one ended trial from its ``cv.json``.

    Returns:
        The event file written.
    """
    trial_dir = Path(tb_dir) / str(cv["family"]) / f"trial_{cv['trial_id']}"
    trial_dir.mkdir(parents=True, exist_ok=True)
    for old in trial_dir.glob(EVENTS_PREFIX + "*"):  # one session per trial, also on resume
        old.unlink()
    hparams = {k: v for k, v in (cv.get("hyperparameters") or {}).items() if v is not None}
    hparams.update(family=cv["family"], diagnosis=cv.get("diagnosis") or "-")
    for key, value in (cv.get("hyperband") or {}).items():
        if key in ("epochs", "round"):
            hparams[f"tuner/{key}"] = value
    start, end = session_summaries(hparams, str(cv.get("status")))
    writer = EventWriter(trial_dir)
    try:
        writer.summary(start)
        metrics = {f"cv/mean_{k}": v for k, v in (cv.get("mean") or {}).items()}
        metrics.update({f"cv/std_{k}": v for k, v in (cv.get("std") or {}).items()})
        writer.scalars(metrics, 0)
        writer.summary(end)
    finally:
        writer.close()
    return writer.path


def write_experiment(tb_dir: Path, hparam_names: list[str], metric_tags: list[str]) -> Path:
    """Writes (or rewrites) the HParams experiment summary at the TensorBoard folder's root.

    Without it the dashboard would infer a metric from every scalar tag of every session's
    sub-runs (each fold's epoch curves); with it, it shows the ``cv/`` metrics named here.
    """
    from tensorboard.compat.proto import summary_pb2
    from tensorboard.plugins.hparams import api_pb2, metadata, plugin_data_pb2

    root = Path(tb_dir)
    root.mkdir(parents=True, exist_ok=True)
    for old in root.glob(EVENTS_PREFIX + "*"):
        old.unlink()
    experiment = api_pb2.Experiment(
        time_created_secs=time.time(),
        hparam_infos=[api_pb2.HParamInfo(name=n) for n in sorted(set(hparam_names))],
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
    and the fold std of the objective."""
    from spaces.metrics import METRIC_NAMES, PROBE_OBJECTIVES

    means = [f"val_{m}" for m in METRIC_NAMES] + list(PROBE_OBJECTIVES) + list(METRIC_NAMES)
    tags = [f"cv/mean_{m}" for m in means]
    return [f"cv/mean_{objective}"] + [t for t in tags if t != f"cv/mean_{objective}"] + [
        f"cv/std_{objective}"]
