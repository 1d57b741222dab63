"""Configuration validation, objectives and directions, resume comparison (no training)."""

from __future__ import annotations

import json

import pytest

from search import run_folder as rf
from search.budget import BudgetExhausted, TimeBudget
from search.config import SearchConfig, objective_direction, valid_objectives, validate
from search.errors import SearchError
from search.failures import check_consecutive, check_finite, failure_reason, is_oom
from search.oracles import oracle_seed


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
    assert changed == ["weights: saved 'imagenet', now 'none'"]
