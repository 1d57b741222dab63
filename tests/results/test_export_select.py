"""``--ensemble select``: export of the selected weighted ensemble from a tiny real run."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
from conftest import TINY_VALUES, build_tiny_real_run, write_trial

# Three distinct CNN configurations (0000 is the fixture's).
EXTRA = {"0001": dict(TINY_VALUES["cnn"], dense_units=16, learning_rate=1e-2),
         "0002": dict(TINY_VALUES["cnn"], conv_filters=4, learning_rate=5e-3)}


def _pool_folds(run_dir: Path, data_root: Path):
    import data_pipeline

    ds = data_pipeline.load_dataset(data_root, image_size=16, progress=False)
    split = data_pipeline.load_split(run_dir / "split.json", ds)
    pool = np.asarray(split.train_idx)
    return ds, pool, data_pipeline.make_folds(ds.y[pool], ds.groups[pool], 2, 42)


def _fold_models(run_dir: Path, trial_id: str, values: dict):
    import keras_tuner as kt

    import spaces

    hm = spaces.HYPERMODELS["cnn"]((16, 16, 1))
    models = []
    for k in range(2):
        hp = kt.HyperParameters()
        hp.values.update(values)
        model = hm.build(hp)
        with warnings.catch_warnings():  # the file's optimizer slots: a predictor has none
            warnings.simplefilter("ignore", UserWarning)
            model.load_weights(str(run_dir / "cnn" / f"trial_{trial_id}"
                                   / f"fold{k}.weights.h5"))
        models.append(model)
    return models


def _write_oof(run_dir: Path, data_root: Path, trial_id: str, values: dict) -> None:
    """What the search writes at each fold's end (search/fit/fold_fit.py -> search/store/oof.py)."""
    from data_pipeline import shifted_sets
    from search.fit.probes import probe_scores
    from search.store.oof import save_fold_oof

    ds, pool, folds = _pool_folds(run_dir, data_root)
    for k, (model, (_, va)) in enumerate(zip(_fold_models(run_dir, trial_id, values), folds)):
        x_va, y_va = ds.x[pool[va]], ds.y[pool[va]]
        keep: dict = {}
        probe_scores(model, x_va, y_va, shifted_sets(x_va), keep=keep)
        save_fold_oof(run_dir / "cnn" / f"trial_{trial_id}", k, x_va=x_va, y_va=y_va,
                      scores=keep)


def _add_trial(run_dir: Path, data_root: Path, trial_id: str, values: dict, score: float):
    import keras
    import keras_tuner as kt

    import spaces

    ds, pool, folds = _pool_folds(run_dir, data_root)
    tdir = write_trial(run_dir / "cnn", trial_id, values, fold_scores=[score, score], epochs=2)
    hm = spaces.HYPERMODELS["cnn"]((16, 16, 1))
    for k, (tr, va) in enumerate(folds):
        keras.utils.set_random_seed(10 + k + int(trial_id))
        hp = kt.HyperParameters()
        hp.values.update(values)
        model = hm.build(hp)
        hm.fit(hp, model, ds.x[pool[tr]], ds.y[pool[tr]],
               validation_data=(ds.x[pool[va]], ds.y[pool[va]]), epochs=1, seed=k)
        model.save_weights(str(tdir / f"fold{k}.weights.h5"))


@pytest.fixture(scope="module")
def select_run(tmp_path_factory: pytest.TempPathFactory, synthetic_root: Path) -> Path:
    """Three finished CNN configurations with their out-of-fold files, exported with select."""
    from results.export import export_winners

    run_dir = build_tiny_real_run(tmp_path_factory.mktemp("select"), synthetic_root,
                                  families=("cnn",))
    for tid, values in EXTRA.items():
        _add_trial(run_dir, synthetic_root, tid, values, 0.79 - 0.01 * int(tid))
    for tid, values in {"0000": TINY_VALUES["cnn"], **EXTRA}.items():
        _write_oof(run_dir, synthetic_root, tid, values)
    export_winners(run_dir, model="cnn", progress=False, with_single=False)
    return run_dir


def test_select_writes_weights_that_reload_and_reproduce_from_the_files(select_run: Path):
    from results.ensemble import family_selection
    from results.model_io import load_run
    from results.selection import from_json, to_json

    out = select_run / "exports" / "cnn" / "rank1"
    record = json.loads((out / "ensemble.json").read_text())
    meta = json.loads((out / "metadata.json").read_text())
    assert meta["ensemble"]["kind"] == "select"
    sel = from_json(record)
    assert sel.weights == dict(zip(meta["ensemble"]["members"], meta["ensemble"]["weights"]))
    assert sum(sel.weights.values()) == pytest.approx(1.0) and len(sel.weights) <= 5
    assert {c["trial_id"] for c in record["candidates"]} == {"0000", "0001", "0002"}
    assert all(len(c["oof_sha256"]) == 2 for c in record["candidates"])
    # From the files alone: the same selection again.
    again, members = family_selection(select_run, "cnn", load_run(select_run))
    assert to_json(again) == record
    assert [str(m["trial_id"]) for m in members] == list(sel.weights)


def test_select_export_is_the_weighted_average_of_its_members(select_run: Path,
                                                             synthetic_root: Path):
    from results.model_io import load_export

    export = load_export(select_run / "exports" / "cnn" / "rank1")
    weights = dict(zip(export.metadata["ensemble"]["members"],
                       export.metadata["ensemble"]["weights"]))
    values = {"0000": TINY_VALUES["cnn"], **EXTRA}
    ds, pool, folds = _pool_folds(select_run, synthetic_root)
    x = ds.x.astype("float32")
    expected = sum(w * np.mean([m.predict(x, verbose=0).ravel()
                                for m in _fold_models(select_run, t, values[t])], axis=0)
                   for t, w in weights.items())
    np.testing.assert_allclose(export.model.predict(x, verbose=0).ravel(), expected, atol=1e-5)
    thr = export.threshold
    assert thr["source"] == "out_of_fold_early_stopped" and thr["optimistic"] is True
    if len(weights) > 1:
        assert "weighted average" in thr["scores"]


def test_one_finished_configuration_falls_back_to_its_fold_ensemble(
        tmp_path: Path, synthetic_root: Path, capsys: pytest.CaptureFixture):
    from results.export import export_winners
    from results.model_io import load_export

    run_dir = build_tiny_real_run(tmp_path, synthetic_root, families=("cnn",))
    _write_oof(run_dir, synthetic_root, "0000", TINY_VALUES["cnn"])
    export_winners(run_dir, model="cnn", progress=False, with_single=False)
    assert "one finished configuration" in capsys.readouterr().err
    export = load_export(run_dir / "exports" / "cnn" / "rank1")
    ens = export.metadata["ensemble"]
    assert ens["members"] == ["0000"] and ens["weights"] == [1.0]
    assert "one finished configuration" in ens["fallback"]
    ds, _, _ = _pool_folds(run_dir, synthetic_root)
    x = ds.x.astype("float32")
    mean = np.mean([m.predict(x, verbose=0).ravel()
                    for m in _fold_models(run_dir, "0000", TINY_VALUES["cnn"])], axis=0)
    np.testing.assert_allclose(export.model.predict(x, verbose=0).ravel(), mean, atol=1e-5)


def test_max_members_is_checked_before_any_work(tmp_path: Path):
    from results.errors import ResultsError
    from results.export import export_winners

    with pytest.raises(ResultsError, match="--ensemble-max-members"):
        export_winners(tmp_path, ensemble="select", max_members=0)


def test_weighted_average_model_saves_and_reloads_as_the_weighted_mean(tmp_path: Path):
    import keras

    from results.ensemble import weighted_average_models

    def const_model(value: float, name: str):
        inputs = keras.Input((4,))
        out = keras.layers.Dense(1, activation="sigmoid", kernel_initializer="zeros",
                                 bias_initializer=keras.initializers.Constant(value))(inputs)
        return keras.Model(inputs, out, name=name)

    groups = [[const_model(0.0, "a0"), const_model(2.0, "a1")], [const_model(-1.0, "b0")]]
    model = weighted_average_models(groups, [0.25, 0.75], (4,), name="ens")
    sig = lambda v: 1 / (1 + np.exp(-v))  # noqa: E731
    expected = 0.25 * (sig(0.0) + sig(2.0)) / 2 + 0.75 * sig(-1.0)
    x = np.zeros((3, 4), "float32")
    np.testing.assert_allclose(model.predict(x, verbose=0).ravel(), expected, atol=1e-6)
    model.save(tmp_path / "m.keras")
    back = keras.models.load_model(tmp_path / "m.keras", safe_mode=True)
    np.testing.assert_allclose(back.predict(x, verbose=0).ravel(), expected, atol=1e-6)


def test_leaderboard_shows_the_selected_members_and_weights(select_run: Path):
    from results.leaderboard_output import write_leaderboard

    lines: list[str] = []
    board = write_leaderboard(select_run, family="cnn", echo=lines.append, plots=False)
    record = json.loads((select_run / "exports" / "cnn" / "rank1" / "ensemble.json").read_text())
    weights = {m["trial_id"]: m["weight"] for m in record["members"]}
    rows = {r["trial_id"]: r for r in board["rows"]}
    assert {t: rows[t]["ensemble_weight"] for t in weights} == weights
    assert all(r["ensemble_weight"] == 0.0 for t, r in rows.items() if t not in weights)
    text = "\n".join(lines)
    assert "--ensemble select" in text and all(f"trial {t}" in text for t in weights)
    assert "ensemble_weight" in (select_run / "leaderboard.csv").read_text()


def test_report_lists_members_and_weights():
    from results.report.sections import ensemble_blocks, ensemble_text

    ens = {"kind": "select", "members": ["0003", "0001"], "weights": [0.6, 0.4],
           "selected_on": "val_auc_geometric", "fallback": None}
    assert ensemble_text(ens) == "select: 0003 x 0.60, 0001 x 0.40"
    assert ensemble_text({"kind": "folds", "members": ["0003"]}) == "folds"
    blocks = ensemble_blocks({"cnn": {"ensemble": ens}, "ann": {"ensemble": {"kind": "none"}}})
    table = [b for b in blocks if b.kind == "table"][0]
    assert table.rows == [["CNN", "select", "0003", "0.600", "val_auc_geometric", ""],
                          ["CNN", "select", "0001", "0.400", "val_auc_geometric", ""]]
