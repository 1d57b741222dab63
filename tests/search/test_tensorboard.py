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
    from search.tensorboard import fold_dir, make_fold_callback

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
