"""benchmarks/search_efficiency.py: what counts as judged on quality, from cv.json records."""

from __future__ import annotations

import json

from benchmarks import search_efficiency as se


def _cv(tid: str, status: str, rungs: list[dict], **extra) -> dict:
    return {"trial_id": tid, "status": status, "objective": "val_auc_geometric",
            "ladder": {"bracket": 0, "rungs": rungs}, "duration_s": 10.0, **extra}


def test_a_suspended_configuration_counts_as_judged_only_where_three_reached_its_rung(tmp_path):
    lone = _cv("0000", "SUSPENDED", [{"rung": 1, "value": 0.9, "suspended": True}],
               stopped_in_fold={"rule": "suspend", "best": {"val_auc_geometric": 0.9}})
    beaten = _cv("0001", "SUSPENDED", [{"rung": 0, "value": 0.8, "suspended": True}],
                 stopped_in_fold={"rule": "suspend", "best": {"val_auc_geometric": 0.8}})
    pruned = _cv("0002", "PRUNED", [{"rung": 0, "value": 0.7}],
                 stopped_in_fold={"rule": "ladder", "best": {"val_auc_geometric": 0.7}})
    cost = _cv("0003", "PRUNED", [], censored=True,
               stopped_in_fold={"rule": "cost", "best": {"val_auc_geometric": 0.6}})
    resumed = _cv("0004", "RUNNING", [{"rung": 0, "value": 0.95, "suspended": True,
                                       "promoted": True, "resumed": True}])
    cvs = [lone, beaten, pruned, cost, resumed]
    fields = se.rung_fields(cvs)
    assert fields == {(0, 0): 3, (0, 1): 1}
    assert [se.judged_on_quality(cv, fields) for cv in cvs] == [False, True, True, False, False]
    for cv in cvs:
        d = tmp_path / "cnn" / f"trial_{cv['trial_id']}"
        d.mkdir(parents=True)
        (d / "cv.json").write_text(json.dumps(cv))
    r = se.summarise(tmp_path, max_epochs=30, n_folds=3, low=0.9)
    assert (r["trials"], r["judged"], r["suspended"], r["stopped_for_cost"],
            r["cut_by_budget"]) == (5, 2, 2, 1, 1)
    assert "| suspended at the end |" in se.markdown({"ladder_random": {
        **r, "load_start": 0.1, "load_end": 0.2}})
