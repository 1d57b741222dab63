"""``--objective auto``: one objective per family, recorded once, kept by a resume."""

from __future__ import annotations

import json

from search.config import AUTO_OBJECTIVES, SearchConfig, resolve_objective
from search.preflight import resolve_auto_objectives


def test_auto_resolves_per_family_and_to_val_auc_beyond_two_classes():
    for family, name in AUTO_OBJECTIVES.items():
        assert resolve_objective("auto", 2, family) == name
    assert resolve_objective("auto", 3, "ann") == "val_auc"
    assert resolve_objective("val_loss", 2, "ann") == "val_loss"


def test_a_new_run_records_each_familys_objective():
    config = SearchConfig(model="both", objective="auto")
    resolve_auto_objectives(config, 2, None)
    assert config.objectives == {"cnn": AUTO_OBJECTIVES["cnn"], "ann": AUTO_OBJECTIVES["ann"]}
    assert config.objective_for("ann")[0] == AUTO_OBJECTIVES["ann"]
    assert config.objective == AUTO_OBJECTIVES["cnn"]  # the first family's
    assert config.to_record({})["objectives"] == config.objectives
    ann = SearchConfig(model="ann", objective="auto")
    resolve_auto_objectives(ann, 2, None)
    assert ann.objective == AUTO_OBJECTIVES["ann"] and ann.objectives == {"ann": ann.objective}


def test_a_resume_keeps_the_recorded_objectives():
    saved = {"config": {"objective": "val_auc_geometric",
                        "objectives": {"cnn": "val_auc_geometric", "ann": "val_auc_border"}}}
    config = SearchConfig(model="both", objective="auto")
    resolve_auto_objectives(config, 2, saved)
    assert config.objective_for("ann") == ("val_auc_border", "max")
    # A run recorded before per-family objectives keeps its single one for every family.
    older = SearchConfig(model="both", objective="auto")
    resolve_auto_objectives(older, 2, {"config": {"objective": "val_auc_geometric"}})
    assert older.objectives is None and older.objective == "val_auc_geometric"
    assert older.objective_for("ann") == ("val_auc_geometric", "max")
    old_ann = SearchConfig(model="ann", objective="auto")  # an ANN-only run of before
    resolve_auto_objectives(old_ann, 2, {"config": {"objective": "val_auc_geometric"}})
    assert old_ann.objective_for("ann") == ("val_auc_geometric", "max")


def test_results_rank_each_family_by_its_own_objective(tmp_path):
    from results.leaderboard import run_objective

    (tmp_path / "run.json").write_text(json.dumps({"config": {
        "objective": "val_auc_geometric", "direction": "max",
        "objectives": {"cnn": "val_auc_geometric", "ann": "val_loss"}}}))
    assert run_objective(tmp_path, "ann") == ("val_loss", "min")
    assert run_objective(tmp_path, "cnn") == ("val_auc_geometric", "max")
    assert run_objective(tmp_path) == ("val_auc_geometric", "max")
