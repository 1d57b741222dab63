"""TensorBoard output of a search: per-fold curves and one HParams session per trial.

Read back with TensorBoard's own reader (EventMultiplexer) and the HParams plugin's parsers.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from search_helpers import REPO, tiny_config

from search.engine import run_search_job


def _runs(tb_dir: Path):
    from tensorboard.backend.event_processing.event_multiplexer import EventMultiplexer

    mux = EventMultiplexer()
    mux.AddRunsFromDirectory(str(tb_dir))
    mux.Reload()
    return mux


def _session(mux, run: str):
    from tensorboard.plugins.hparams import metadata

    content = {tag: mux.SummaryMetadata(run, tag).plugin_data.content
               for tag in mux.Runs()[run]["tensors"]}
    start = metadata.parse_session_start_info_plugin_data(
        content[metadata.SESSION_START_INFO_TAG])
    end = metadata.parse_session_end_info_plugin_data(content[metadata.SESSION_END_INFO_TAG])
    return start, end


def _dashboard(tb_dir: Path, mux=None):
    """The HParams dashboard's session groups, read as ``tensorboard --logdir`` serves them: the
    plugin's ``/session_groups`` route over the Python data provider, asked what the dashboard
    asks (every status allowed). ``mux``: a multiplexer to reload, as a server left open."""
    from tensorboard.backend.event_processing import data_provider, plugin_event_multiplexer
    from tensorboard.plugins import base_plugin
    from tensorboard.plugins.hparams import hparams_plugin
    from werkzeug.test import Client

    if mux is None:
        mux = plugin_event_multiplexer.EventMultiplexer()
        mux.AddRunsFromDirectory(str(tb_dir))
    mux.Reload()
    plugin = hparams_plugin.HParamsPlugin(base_plugin.TBContext(
        logdir=str(tb_dir), multiplexer=mux,
        data_provider=data_provider.MultiplexerDataProvider(mux, str(tb_dir))))
    request = {"experimentName": "", "colParams": [], "startIndex": 0, "sliceSize": 1000,
               "allowedStatuses": ["STATUS_UNKNOWN", "STATUS_SUCCESS", "STATUS_FAILURE",
                                   "STATUS_RUNNING"]}
    response = Client(plugin.get_plugin_apps()["/session_groups"]).post(
        "/", data=json.dumps(request))
    assert response.status_code == 200, response.get_data()
    groups = json.loads(response.get_data())["sessionGroups"]
    return {g["name"]: g for g in groups}, mux


def _status(group) -> str:
    (session,) = group["sessions"]
    return session.get("status", "STATUS_UNKNOWN")  # proto JSON leaves the default value out


def _metric(group, tag: str) -> float | None:
    values = [m["value"] for m in group["metricValues"] if m["name"]["tag"] == tag]
    return values[0] if values else None


def test_pruned_and_budget_cut_trials_appear_with_their_status_and_resume_updates_them(
        tmp_path, synthetic_root, monkeypatch):
    import search.engine as engine
    from search.schedule import ladder
    from search.schedule.budget import TimeBudget

    # Trial 0000 completes; 0001 is pruned by the ladder at the end of its first fold (the
    # first verdict with a peer is scripted to stop it; every other goes on); the time budget
    # runs out once 0002 has finished its first fold (a clock that jumps then: no wall time
    # involved), so 0002 is cut before its second fold.
    real, pruned = ladder.verdict, []

    def prune_once(value, peers, direction, eta=ladder.ETA):
        v = real(value, peers, direction, eta)
        stop = bool(peers) and not pruned
        pruned.extend([1] if stop else [])
        return ladder.Verdict(not stop, v.rank, v.field, v.keep, v.boundary)

    monkeypatch.setattr(ladder, "verdict", prune_once)
    # No trial waits at a rung for peers here (search.schedule.ladder, "Suspension"): this
    # test is about the statuses TensorBoard shows, the suspended one included below.
    monkeypatch.setattr(ladder, "must_wait", lambda field, eta=ladder.ETA: False)
    fam_dir = tmp_path / "run" / "ann"
    clock = lambda: 1e9 if (fam_dir / "trial_0002" / "fold0.json").exists() else 0.0  # noqa: E731
    monkeypatch.setattr(engine, "TimeBudget", lambda minutes: TimeBudget(minutes, clock=clock))
    cfg = tiny_config(tmp_path, synthetic_root, max_trials=3, max_epochs=1, ladder=True,
                      time_budget_min=600.0)
    assert run_search_job(cfg)["status"] == "budget_exhausted"
    cvs = {tid: json.loads((fam_dir / f"trial_{tid}" / "cv.json").read_text())
           for tid in ("0000", "0001", "0002")}
    assert [cvs[t]["status"] for t in sorted(cvs)] == ["COMPLETED", "PRUNED", "RUNNING"]
    assert len(cvs["0002"]["folds"]) == 1

    tb_dir = Path(cfg.run_dir) / "tensorboard"
    groups, mux = _dashboard(tb_dir)
    assert sorted(groups) == ["ann/trial_0000", "ann/trial_0001", "ann/trial_0002"]
    done, raced, cut = (groups[f"ann/trial_{t}"] for t in ("0000", "0001", "0002"))
    assert _status(done) == "STATUS_SUCCESS"
    assert (done["hparams"]["status"], done["hparams"]["stop_reason"]) == ("COMPLETED", "-")
    # Neither pruned nor cut is running (nor failed): the plugin's unknown, and a status column.
    assert _status(raced) == "STATUS_UNKNOWN"
    assert raced["hparams"]["status"] == "PRUNED"
    assert raced["hparams"]["stop_reason"] == cvs["0001"]["reason"]
    assert _status(cut) == "STATUS_UNKNOWN"
    assert cut["hparams"]["status"] == "STOPPED"
    assert cut["hparams"]["stop_reason"] == ("time budget spent after 1 of 2 fold(s); resuming "
                                             "the search finishes it")
    obj = f"cv/mean_{cfg.objective}"
    for tid, group in (("0001", raced), ("0002", cut)):  # the finished folds' partial metrics
        assert _metric(group, obj) == pytest.approx(cvs[tid]["mean"][cfg.objective], rel=1e-6)
        assert _metric(group, "cv/folds_finished") == 1

    # The resumed search finishes 0002: its session is updated in place, not duplicated.
    monkeypatch.setattr(engine, "TimeBudget", TimeBudget)
    cfg.time_budget_min, cfg.ladder = None, False
    assert run_search_job(cfg)["status"] == "completed"
    final = json.loads((fam_dir / "trial_0002" / "cv.json").read_text())
    assert final["status"] == "COMPLETED" and len(final["folds"]) == 2
    groups, _ = _dashboard(tb_dir)
    assert sorted(groups) == ["ann/trial_0000", "ann/trial_0001", "ann/trial_0002"]
    cut = groups["ann/trial_0002"]
    assert _status(cut) == "STATUS_SUCCESS" and cut["hparams"]["status"] == "COMPLETED"
    assert _metric(cut, "cv/folds_finished") == 2
    assert _metric(cut, obj) == pytest.approx(final["mean"][cfg.objective], rel=1e-6)
    assert _status(groups["ann/trial_0001"]) == "STATUS_UNKNOWN"
    # A server left open across the resume shows the final status and metrics too.
    live, _ = _dashboard(tb_dir, mux)
    assert len(live) == 3 and _status(live["ann/trial_0002"]) == "STATUS_SUCCESS"
    assert _metric(live["ann/trial_0002"], "cv/folds_finished") == 2


def test_a_trial_interrupted_between_folds_appears_as_stopped(tmp_path, synthetic_root,
                                                              monkeypatch):
    import signal

    from search.runtime import signals

    fam_dir = tmp_path / "run" / "ann"
    real_check = signals.check

    def check():  # SIGTERM arrives once trial 0000 has finished its first fold
        if (fam_dir / "trial_0000" / "fold0.json").exists():
            raise signals.SearchInterrupted(signal.SIGTERM)
        real_check()

    monkeypatch.setattr(signals, "check", check)
    cfg = tiny_config(tmp_path, synthetic_root, max_trials=1, max_epochs=1)
    with pytest.raises(signals.SearchInterrupted):
        run_search_job(cfg)
    groups, _ = _dashboard(Path(cfg.run_dir) / "tensorboard")
    group = groups["ann/trial_0000"]
    assert _status(group) == "STATUS_UNKNOWN" and group["hparams"]["status"] == "STOPPED"
    assert group["hparams"]["stop_reason"] == ("interrupted (SIGTERM) after 1 of 2 fold(s); "
                                               "resuming the search finishes it")
    assert _metric(group, "cv/folds_finished") == 1
    # The stop landed after fold 0's record, before cv.json counted it: the record counts.
    fold0 = json.loads((fam_dir / "trial_0000" / "fold0.json").read_text())
    assert _metric(group, f"cv/mean_{cfg.objective}") == pytest.approx(
        fold0["best"][cfg.objective], rel=1e-6)


def test_every_cv_status_maps_to_a_dashboard_status_and_a_status_column(tmp_path):
    from search.watch import tensorboard

    base = {"family": "cnn", "hyperparameters": {"learning_rate": 0.01},
            "mean": {"val_auc": 0.8}, "std": {"val_auc": 0.0}, "folds": [{"fold": 0}]}
    records = {"0000": {"status": "COMPLETED"}, "0001": {"status": "FAILED", "reason": "OOM"},
               "0002": {"status": "PRUNED", "reason": "pruned in fold 1 at epoch 2"},
               "0003": {"status": "RUNNING"}}  # left by a kill: no stop reason known
    tensorboard.write_experiment(tmp_path, ["learning_rate"],
                                 tensorboard.experiment_metrics("val_auc"))
    (tmp_path / "cnn").mkdir()
    for tid, extra in records.items():
        trial = tmp_path / "cnn" / f"trial_{tid}"
        trial.mkdir()
        (trial / "cv.json").write_text(json.dumps({**base, "trial_id": tid, **extra}))
    # A kill landed after fold 1's record but before cv.json counted it: the fold files count,
    # as in the leaderboard (the partial fold of a pruned trial does not).
    for name, auc in (("fold0.json", 0.8), ("fold1.json", 0.6), ("pruned_fold2.json", 0.1)):
        (tmp_path / "cnn" / "trial_0003" / name).write_text(json.dumps({"best": {"val_auc": auc}}))
    (tmp_path / "cnn" / "trial_0004").mkdir()
    (tmp_path / "cnn" / "trial_0004" / "cv.json").write_text("{damaged")  # skipped
    assert tensorboard.write_sessions(tmp_path, tmp_path / "cnn") == 4
    groups, _ = _dashboard(tmp_path)
    got = {name: (_status(g), g["hparams"]["status"], g["hparams"]["stop_reason"])
           for name, g in groups.items()}
    assert got == {
        "cnn/trial_0000": ("STATUS_SUCCESS", "COMPLETED", "-"),
        "cnn/trial_0001": ("STATUS_FAILURE", "FAILED", "OOM"),
        "cnn/trial_0002": ("STATUS_UNKNOWN", "PRUNED", "pruned in fold 1 at epoch 2"),
        "cnn/trial_0003": ("STATUS_UNKNOWN", "STOPPED",
                           "stopped after 2 fold(s); resuming the search finishes it")}
    assert _metric(groups["cnn/trial_0003"], "cv/mean_val_auc") == pytest.approx(0.7)
    assert _metric(groups["cnn/trial_0003"], "cv/folds_finished") == 2
    assert _metric(groups["cnn/trial_0002"], "cv/folds_finished") == 1


def test_search_writes_fold_curves_and_one_session_per_trial(tmp_path, synthetic_root):
    from tensorboard.plugins.hparams import api_pb2, metadata

    cfg = tiny_config(tmp_path, synthetic_root, max_trials=2)
    assert run_search_job(cfg)["status"] == "completed"
    run_dir = Path(cfg.run_dir)
    tb_dir = run_dir / "tensorboard"
    mux = _runs(tb_dir)
    runs = mux.Runs()
    # The experiment at the root names the objective's cv metric first.
    exp = metadata.parse_experiment_plugin_data(
        mux.SummaryMetadata(".", metadata.EXPERIMENT_TAG).plugin_data.content)
    assert exp.metric_infos[0].name.tag == f"cv/mean_{cfg.objective}"
    assert {"family", "diagnosis", "dense_layers"} <= {h.name for h in exp.hparam_infos}
    for tid in ("0000", "0001"):
        cv = json.loads((run_dir / "ann" / f"trial_{tid}" / "cv.json").read_text())
        start, end = _session(mux, f"ann/trial_{tid}")
        assert start.hparams["family"].string_value == "ann"
        assert start.hparams["diagnosis"].string_value == cv["diagnosis"]
        assert start.hparams["learning_rate"].number_value == pytest.approx(
            cv["hyperparameters"]["learning_rate"])
        assert end.status == api_pb2.STATUS_SUCCESS
        mean = mux.Scalars(f"ann/trial_{tid}", f"cv/mean_{cfg.objective}")
        assert mean[0].value == pytest.approx(cv["mean"][cfg.objective], rel=1e-6)
        assert mux.Scalars(f"ann/trial_{tid}", "cv/mean_val_auc_geometric")
        for k, fold in enumerate(cv["folds"]):
            for side in ("train", "validation"):
                loss = mux.Scalars(f"ann/trial_{tid}/fold{k}/{side}", "epoch_loss")
                assert [e.step for e in loss] == list(range(fold["epochs_trained"]))
            lr = mux.Scalars(f"ann/trial_{tid}/fold{k}/train", "epoch_learning_rate")
            assert lr[0].value == pytest.approx(cv["hyperparameters"]["learning_rate"],
                                                rel=1e-5)
    assert "ann/trial_0000" in runs and "ann/trial_0001" in runs

    # Extending the search (a resume) adds one session and keeps one per trial.
    cfg3 = tiny_config(tmp_path, synthetic_root, max_trials=3)
    assert run_search_job(cfg3)["status"] == "completed"
    for tid in ("0000", "0001", "0002"):
        files = list((tb_dir / "ann" / f"trial_{tid}").glob("events.out.tfevents.*"))
        assert len(files) == 1, files
    assert len(list(tb_dir.glob("events.out.tfevents.*"))) == 1  # one experiment summary


def test_a_redone_fold_replaces_its_partial_curves(tmp_path):
    from search.watch.tensorboard import fold_dir, make_fold_callback

    class _Model:
        optimizer = None

    for attempt in range(2):  # a fold killed mid-way, then trained again
        cb = make_fold_callback(tmp_path, "cnn", "0003", 1)
        cb.set_model(_Model())
        cb.on_train_begin()
        for epoch in range(3 if attempt else 2):
            cb.on_epoch_end(epoch, {"loss": 0.5 - epoch / 10, "val_loss": 0.6})
        cb.on_train_end()
    root = fold_dir(tmp_path, "cnn", "0003", 1)
    assert len(list((root / "train").iterdir())) == 1
    mux = _runs(tmp_path)
    assert [e.step for e in mux.Scalars("cnn/trial_0003/fold1/train", "epoch_loss")] == [0, 1, 2]


def test_no_tensorboard_writes_nothing(tmp_path, synthetic_root):
    cfg = tiny_config(tmp_path, synthetic_root, max_trials=1, tensorboard=None)
    assert run_search_job(cfg)["status"] == "completed"
    assert not (Path(cfg.run_dir) / "tensorboard").exists()


@pytest.mark.skipif(importlib.util.find_spec("jax") is None,
                    reason="jax is not installed (./test.sh installs TensorFlow only; CI adds "
                           "requirements-jax.txt)")
def test_tensorboard_under_jax_without_tensorflow(tmp_path, synthetic_root):
    # As on the GPU machines, which have no TensorFlow: importing it fails in this process
    # (Keras itself would otherwise import an installed TensorFlow to seed it).
    code = (
        "import sys, importlib.abc\n"
        "class NoTF(importlib.abc.MetaPathFinder):\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'tensorflow' or name.startswith('tensorflow.'):\n"
        "            raise ImportError('no TensorFlow on this machine')\n"
        "sys.meta_path.insert(0, NoTF())\n"
        "sys.path[:0] = ['tests/search', 'tests']\n"
        "from pathlib import Path\n"
        "from search_helpers import tiny_config\n"
        "from search.engine import run_search_job\n"
        f"cfg = tiny_config(Path({str(tmp_path)!r}), Path({str(synthetic_root)!r}), "
        "max_trials=1)\n"
        "assert run_search_job(cfg)['status'] == 'completed'\n"
        "assert 'tensorflow' not in sys.modules, 'TensorFlow was imported'\n"
        "print('ok')\n")
    env = {**os.environ, "KERAS_BACKEND": "jax", "PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0 and "ok" in done.stdout, done.stderr[-3000:]
    mux = _runs(tmp_path / "run" / "tensorboard")
    assert "ann/trial_0000" in mux.Runs()
    assert mux.Scalars("ann/trial_0000/fold0/train", "epoch_loss")


def test_a_suspended_trial_is_a_stopped_session_with_its_reason():
    from search.watch.tensorboard import session_status

    reason = "suspended at fold 1 at epoch 2 (ladder rung 1): val_auc_geometric 0.9 ranks 1 of 1"
    assert session_status({"status": "SUSPENDED", "reason": reason}) == ("STOPPED", reason)
    assert session_status({"status": "PRUNED", "reason": "pruned"}) == ("PRUNED", "pruned")
