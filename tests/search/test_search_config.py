"""Configuration validation, objectives and directions, resume comparison (no training)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from search.config import SearchConfig, objective_direction, valid_objectives, validate
from search.errors import SearchError
from search.fit.failures import check_consecutive, check_finite, failure_reason, is_oom
from search.schedule.budget import BudgetExhausted, TimeBudget
from search.store import run_folder as rf
from search.tuners.oracles import oracle_seed


@pytest.mark.parametrize("name,direction", [("val_auc", "max"), ("val_loss", "min"),
                                            ("val_recall", "max"), ("val_pr_auc", "max")])
def test_objective_direction(name, direction):
    cfg = validate(SearchConfig(objective=name))
    assert cfg.direction == direction == objective_direction(name)


def test_unknown_objective_lists_valid_names():
    with pytest.raises(SearchError) as err:
        validate(SearchConfig(objective="val_f1"))
    for name in valid_objectives():
        assert name in str(err.value)
    assert "val_loss" in valid_objectives()


@pytest.mark.parametrize("field,value,word", [
    ("folds", 0, "--folds"), ("max_trials", 0, "--max-trials"), ("max_epochs", 0, "--max-epochs"),
    ("patience", 0, "--patience"), ("time_budget_min", -1.0, "--time-budget"),
    ("image_size", 4, "--image-size"), ("tuner", "grid", "--tuner"), ("seed", -1, "--seed"),
    ("data", "/no/such/folder", "/no/such/folder"), ("space_file", "/no/such.toml", "--space"),
    ("max_params", 10, "--max-params"), ("max_gflops", -0.5, "--max-gflops"),
])
def test_bad_values_are_refused(field, value, word):
    with pytest.raises(SearchError, match=word.replace("-", r"\-")):
        validate(SearchConfig(**{field: value}))


def test_a_run_json_without_settings_is_refused_in_one_short_paragraph(tmp_path):
    space = {"source": "b.toml", "cnn": {"x": {"type": "int"}, "y": {"type": "int"}}}
    with pytest.raises(SearchError) as err:  # written by a search stopped before its config
        rf.check_resume(tmp_path, {"status": "interrupted"}, {"folds": 3, "space": space}, "a")
    text = str(err.value)
    assert "records no search settings" in text and "--overwrite" in text and len(text) < 600
    # One side without a space names both in a phrase; it never dumps the dimensions.
    diffs = rf.config_differences({"folds": 3}, {"folds": 3, "space": space})
    assert diffs == ["--space: saved not given (the default), now the space of b.toml "
                     "(2 cnn dimensions)"]


def test_resume_refused_names_difference_and_ways_out(tmp_path):
    saved = {"config": {"folds": 3, "tuner": "hyperband", "objective": "val_auc",
                        "space": {"source": "a.toml", "cnn": {"x": 1}}},
             "data_files_fingerprint": "abc"}
    current = {"folds": 2, "tuner": "hyperband", "objective": "val_auc",
               "space": {"source": "b.toml", "cnn": {"x": 1}}}
    with pytest.raises(SearchError) as err:
        rf.check_resume(tmp_path, saved, current, "abc")
    text = str(err.value)
    assert "folds" in text and "--overwrite" in text and "--run-dir" in text
    assert "space" not in text.split("cannot be resumed")[1].split("Either")[0]
    # only the space's source path differs: allowed; a different data set is not
    current["folds"] = 3
    rf.check_resume(tmp_path, saved, current, "abc")
    with pytest.raises(SearchError, match="data"):
        rf.check_resume(tmp_path, saved, current, "other")


def test_atomic_json_and_resume_command(tmp_path):
    rf.write_json_atomic(tmp_path / "a.json", {"x": 1})
    assert json.loads((tmp_path / "a.json").read_text()) == {"x": 1}
    assert list(tmp_path.iterdir()) == [tmp_path / "a.json"]
    cmd = rf.resume_command(["run_search.py", "search", "--overwrite", "--run-dir", "a b"])
    assert cmd == "python run_search.py search --run-dir 'a b'"


def test_budget_with_fake_clock():
    now = [0.0]
    budget = TimeBudget(1.0, clock=lambda: now[0])
    budget.check_before_fold()
    now[0] = 61.0
    assert budget.spent()
    with pytest.raises(BudgetExhausted):
        budget.check_before_fold()
    assert TimeBudget(None).remaining_s is None


def test_failure_classification():
    class ResourceExhaustedError(Exception):
        pass

    class XlaRuntimeError(Exception):
        pass

    assert is_oom(ResourceExhaustedError("OOM"))
    assert is_oom(XlaRuntimeError("RESOURCE_EXHAUSTED: Out of memory while trying to allocate"))
    assert is_oom(MemoryError())
    assert not is_oom(ValueError("bad shape"))
    assert failure_reason(MemoryError("x")).startswith("out_of_memory")
    with pytest.raises(Exception, match="nan_loss"):
        check_finite({"loss": [0.5, float("nan")]}, fold=1)
    check_consecutive(["FAILED", "COMPLETED", "FAILED", "FAILED"])
    # over-budget refusals count only towards the (much longer) rejection limit
    check_consecutive(["COMPLETED"] + ["OVER_BUDGET"] * 5 + ["FAILED", "FAILED"])
    with pytest.raises(SearchError, match="4 trials in a row"):
        check_consecutive(["OVER_BUDGET", "FAILED"] * 2, rejected_limit=4)
    with pytest.raises(SearchError, match="3 trials in a row failed"):
        check_consecutive(["COMPLETED", "FAILED", "FAILED", "FAILED"], last_reason="nan_loss")


def test_oracle_seed_honours_zero():
    seeds = {oracle_seed(s, "cnn") for s in range(50)}
    assert len(seeds) == 50 and 0 not in seeds
    assert oracle_seed(0, "cnn") != oracle_seed(0, "ann")


def test_a_run_saved_before_the_transfer_family_still_resumes_and_weights_are_compared():
    import spaces

    space = spaces.load_space(None).to_dict()
    old = {k: v for k, v in space.items() if k != "transfer"}  # run.json of an older version
    saved = {"model": "both", "space": old}
    assert rf.config_differences(saved, {"model": "both", "space": space, "weights": None}) == []
    assert spaces.SpaceConfig.from_dict(old).dims("cnn")  # read back without the new family
    changed = rf.config_differences({"model": "transfer", "space": space, "weights": "imagenet"},
                                    {"model": "transfer", "space": space, "weights": "none"})
    assert changed == ["--weights: saved imagenet, now none"]


def test_resume_refusals_name_the_flags_not_run_json_keys():
    saved = {"max_epochs": 10, "min_epochs": None, "test_fraction": 0.15, "positive_class": None}
    now = {"max_epochs": 6, "min_epochs": 2, "test_fraction": 0.2, "positive_class": "PNEUMONIA"}
    assert rf.config_differences(saved, now) == [
        "--max-epochs: saved 10, now 6", "--min-epochs: saved not given (the default), now 2",
        "--positive-class: saved not given (the default), now PNEUMONIA",
        "--test-fraction: saved 0.15, now 0.2"]


_MODULES_AFTER = """
import sys, run_search
rc = run_search.main(sys.argv[1:])
heavy = [m for m in ("keras_tuner", "tensorflow", "keras", "jax", "torch") if m in sys.modules]
print("RESULT", rc, ",".join(heavy) or "-")
"""


@pytest.mark.parametrize("option", [["--max-trials", "0"], ["--max-trial-share", "2"],
                                    ["--time-budget", "inf"], ["--time-budget", "nan"],
                                    ["--max-epochs", "0"]])
def test_value_refusals_come_before_keras_loads(tmp_path, option):
    """A mistyped value is refused before the engine imports Keras, KerasTuner or a backend
    (checked on sys.modules in a fresh process, not by timing)."""
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-c", _MODULES_AFTER, "search", *option,
                           "--run-dir", str(tmp_path / "run")],
                          cwd=Path(__file__).resolve().parents[2], capture_output=True,
                          text=True, timeout=120)
    result = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT")]
    assert result == ["RESULT 2 -"], proc.stdout + proc.stderr
    assert f"error: {option[0]}" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "run").exists()


def test_time_budget_inf_is_refused_so_run_json_stays_valid_json():
    with pytest.raises(SearchError, match="--time-budget must be a positive, finite"):
        validate(SearchConfig(time_budget_min=float("inf")))


def test_max_trial_share_without_a_time_budget_is_warned():
    from search.commands import option_warnings, register

    parser = argparse.ArgumentParser()
    register(parser.add_subparsers())
    args = parser.parse_args(["search", "--max-trial-share", "0.5"])
    assert any("--max-trial-share 0.5 only applies with --time-budget" in ln
               for ln in option_warnings(args))
    assert option_warnings(parser.parse_args(["search", "--max-trial-share", "0.5",
                                              "--time-budget", "30"])) == []
    assert option_warnings(parser.parse_args(["search"])) == []


@pytest.mark.parametrize("tuner", ["tpe", "bayesian"])
def test_a_cap_within_the_random_start_warns_that_the_model_never_proposes(tmp_path, tuner):
    from search.preflight import describe_tuner
    from search.watch.progress import Progress

    progress = Progress(tmp_path / "search.log", quiet=True)
    describe_tuner("cnn", SearchConfig(tuner=tuner, max_trials=1), progress)
    log = (tmp_path / "search.log").read_text()
    assert "never proposes" in log and "then" not in log
    describe_tuner("ann", SearchConfig(tuner=tuner, max_trials=20), progress)
    assert "[ann] " + tuner + ": " in (tmp_path / "search.log").read_text()


def test_weights_refusals_say_what_was_given(tmp_path):
    with pytest.raises(SearchError, match="--weights NONE: the keywords are lower case. Use "
                                          "--weights none"):
        validate(SearchConfig(model="transfer", weights="NONE"))
    with pytest.raises(SearchError, match="is a folder, not a weights file"):
        validate(SearchConfig(model="transfer", weights=str(tmp_path)))
    with pytest.raises(SearchError, match="no such file"):
        validate(SearchConfig(model="transfer", weights=str(tmp_path / "missing.weights.h5")))


def test_progress_best_breaks_ties_as_export_does():
    """Tied scores: the progress line's best is the lowest trial id, the leaderboard's rank 1."""
    from types import SimpleNamespace

    from results.leaderboard import trials_to_rows
    from search.tuners.cv_tuner import CVTuner

    trials = [SimpleNamespace(trial_id=i, score=s, status="COMPLETED")
              for i, s in (("0003", 0.9), ("0001", 0.9), ("0002", 0.8))]
    oracle = SimpleNamespace(trials={t.trial_id: t for t in trials},
                             get_best_trials=lambda n: sorted(trials, key=lambda t: -t.score)[:n])
    best = CVTuner.best_trial(SimpleNamespace(oracle=oracle))
    rows = trials_to_rows([{"trial_id": t.trial_id, "family": "cnn", "status": "COMPLETED",
                            "mean": {"val_auc": t.score}} for t in trials], "val_auc")
    assert best.trial_id == rows[0]["trial_id"] == "0001"


def test_a_weights_mismatch_on_resume_is_refused_before_keras_loads(tmp_path):
    """Issue 30 item 16: a resume with another --weights file (matched by sha256) is refused in
    one paragraph before the engine imports Keras; a byte-identical copy passes this check."""
    import json
    import subprocess
    import sys

    from spaces.backbones import weights_digest

    run_dir = tmp_path / "run"
    run_dir.mkdir()
    saved, other, copy = (tmp_path / n for n in ("a.weights.h5", "b.weights.h5", "c.weights.h5"))
    saved.write_bytes(b"the run's weights")
    copy.write_bytes(b"the run's weights")
    other.write_bytes(b"other weights")
    (run_dir / "run.json").write_text(json.dumps({"config": {
        "model": "transfer", "weights": str(saved), "weights_sha256": weights_digest(saved)}}))
    rf.early_weights_refusal(run_dir, str(copy), overwrite=False)  # a copy: no refusal
    rf.early_weights_refusal(run_dir, str(other), overwrite=True)  # --overwrite: no resume
    proc = subprocess.run([sys.executable, "-c", _MODULES_AFTER, "search", "--model", "transfer",
                           "--weights", str(other), "--run-dir", str(run_dir)],
                          cwd=Path(__file__).resolve().parents[2], capture_output=True,
                          text=True, timeout=120)
    result = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT")]
    assert result == ["RESULT 2 -"], proc.stdout + proc.stderr
    assert "--weights:" in proc.stderr and "is not a copy of the run's file" in proc.stderr
    assert "Traceback" not in proc.stderr
