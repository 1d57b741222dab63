"""Backbone weights: only what the budget can draw is asked for, files are matched by content,
and export refuses a retrain without its starting weights in one paragraph (issue 30, items
6, 13, 14)."""

from __future__ import annotations

import shutil

import pytest

from spaces import backbones as bb
from spaces import load_space
from spaces.budget import default_max_gflops, default_max_params
from spaces.transfer import TransferHyperModel

TINY = "mobilenetv3small"


def test_only_the_backbones_the_budget_can_draw_have_their_weights_checked(monkeypatch):
    from search import preflight
    from search.config import SearchConfig

    config = SearchConfig(model="transfer", image_size=64, max_params=default_max_params(64),
                          max_gflops=default_max_gflops(64), weights="imagenet")
    asked: list[list[str]] = []
    monkeypatch.setattr(bb, "check_weights", lambda weights, keys: asked.append(list(keys)))
    preflight.check_transfer_weights(config, load_space(None))
    # The CPU default (2M parameters at 64 px) draws MobileNetV3Small only: an offline box with
    # only its file cached is not refused for the other six.
    assert asked == [[TINY]]
    hm = TransferHyperModel((64, 64, 1), max_params=10**9, weights=None)
    assert set(hm.drawable_backbones()) == set(bb.BACKBONES)


def test_a_weights_file_is_matched_by_content_on_resume(tmp_path):
    from search.config import SearchConfig, resolve_weights
    from search.store.run_folder import config_differences

    first = tmp_path / "a" / "small.weights.h5"
    first.parent.mkdir()
    first.write_bytes(b"weights one")
    saved = resolve_weights(SearchConfig(model="transfer", weights=str(first))).to_record({})
    assert saved["weights_sha256"] == bb.weights_digest(first)
    copy = tmp_path / "moved.weights.h5"
    shutil.copy(first, copy)
    moved = resolve_weights(SearchConfig(model="transfer", weights=str(copy))).to_record({})
    assert config_differences(saved, moved) == []  # a byte-identical copy at a new path
    first.write_bytes(b"weights two")  # another file at the same path
    changed = resolve_weights(SearchConfig(model="transfer", weights=str(first))).to_record({})
    diffs = config_differences(saved, changed)
    assert len(diffs) == 1 and "not the one the run was searched with" in diffs[0]
    assert "sha256" in diffs[0]


def _run(weights: str, sha: str | None = None) -> dict:
    return {"config": {"weights": weights, "weights_sha256": sha, "max_epochs": 3}}


def test_export_refuses_a_moved_or_replaced_weights_file_in_one_paragraph(tmp_path):
    from results.errors import ResultsError
    from results.retrain_weights import check_retrain_weights, with_weights

    good = tmp_path / "small.weights.h5"
    bb.make_backbone(TINY, 32, None).save_weights(str(good))
    sha = bb.weights_digest(good)
    records = [{"hyperparameters": {"backbone": TINY}}]
    check_retrain_weights(_run(str(good), sha), records, single=True)  # present: accepted
    moved = tmp_path / "moved.weights.h5"
    good.rename(moved)
    with pytest.raises(ResultsError) as err:
        check_retrain_weights(_run(str(good), sha), records, single=True)
    text = str(err.value)
    assert "does not exist any more" in text and "--weights PATH" in text
    assert "--no-single" in text and "\n" not in text
    # --weights points at the moved file: accepted by content, recorded for the retrain.
    run = with_weights(_run(str(good), sha), moved)
    assert run["config"]["weights"] == str(moved.resolve())
    check_retrain_weights(run, records, single=False)
    # Another backbone's file at the run's path: refused by content, before any Keras error.
    bb.make_backbone("efficientnetb0", 32, None).save_weights(str(good))
    with pytest.raises(ResultsError, match="is not the file the search started from"):
        check_retrain_weights(_run(str(good), sha), records, single=False)
    with pytest.raises(ResultsError, match="is not the file the search started from"):
        with_weights(_run(str(moved), sha), good)
    with pytest.raises(ResultsError, match="is a folder"):
        with_weights(_run(str(moved), sha), tmp_path)
    # A run recorded before sha256 (path only): the file must still load into its backbone.
    with pytest.raises(ResultsError, match="cannot be loaded into the mobilenetv3small"):
        check_retrain_weights(_run(str(good)), records, single=True)


def test_export_refuses_an_offline_imagenet_retrain_before_training(offline_imagenet):
    from results.errors import ResultsError
    from results.retrain_weights import check_retrain_weights

    with pytest.raises(ResultsError) as err:
        check_retrain_weights(_run("imagenet"), [{"hyperparameters": {"backbone": TINY}}],
                              single=True)
    text = str(err.value)
    assert "--no-single" in text and "--weights PATH" in text and "\n" not in text
    # Nothing to check when no retrain is planned (the fold ensemble loads its own weights).
    check_retrain_weights(_run("imagenet"), [], single=True)
