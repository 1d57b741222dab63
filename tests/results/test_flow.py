"""The `run` flow: options and preset, step orchestration and resume (stubbed), and end to end."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

import results.flow as flow
from results.errors import ResultsError
from run_search import build_parser, main


def _parse(*argv: str) -> argparse.Namespace:
    return flow.resolve_options(build_parser().parse_args(["run", *argv]))


def test_run_shares_search_options_and_applies_the_quickstart_preset() -> None:
    args = _parse()
    assert args.data is None
    assert {k: getattr(args, k) for k in flow.QUICKSTART} == flow.QUICKSTART
    assert args.tuner == "hyperband" and args.objective == "auto"  # search's own defaults
    # With --data the search defaults apply, and explicit options always win.
    args = _parse("--data", "/some/data", "--folds", "5")
    assert args.folds == 5 and args.max_trials == 10 and args.run_dir == "runs/default"
    # `search` itself keeps its defaults (the shared option objects are not rewritten).
    search_args = build_parser().parse_args(["search"])
    assert search_args.folds == 3 and search_args.image_size == 64
    assert search_args.tuner == "hyperband" and search_args.mixed_precision == "off"


def test_gpu_preset_fills_what_the_user_left_out() -> None:
    args = _parse("--preset", "gpu", "--data", "/some/data", "--max-trials", "12")
    assert args.image_size == 128 and args.mixed_precision == "auto"
    assert args.tuner == "random" and args.max_epochs == 30 and args.patience == 6
    assert args.max_trials == 12 and args.run_dir == "runs/gpu"  # explicit options win
    # Without --preset, --data keeps search's defaults for the keys only the GPU preset sets.
    plain = _parse("--data", "/some/data")
    assert plain.tuner == "hyperband" and plain.mixed_precision == "off"
    assert plain.image_size == 64


class _Config:
    def __init__(self, run_dir: Path, model: str = "both") -> None:
        self.run_dir, self.model = str(run_dir), model


def test_flow_steps_and_resume_with_stubbed_search(fake_run_dir: Path, monkeypatch) -> None:
    import results.report.compare
    import results.export
    import search.engine

    calls: dict[str, list] = {"search": [], "export": [], "compare": []}
    monkeypatch.setattr(search.engine, "run_search_job",
                        lambda cfg: calls["search"].append(cfg) or {"status": "completed"})

    def fake_export(run_dir, *, model, top_n, target_sensitivity, ensemble=None,
                    max_members=5):
        calls["export"].append(model)
        for fam, tid in (("cnn", "0002"), ("ann", "0002")):
            if model in (fam, "both"):
                # The ensemble and, beside it, the single retrained model.
                for name, kind in (("rank1", "folds"), ("rank1_single", "none")):
                    out = Path(run_dir) / "exports" / fam / name
                    out.mkdir(parents=True, exist_ok=True)
                    (out / "model.keras").write_text("stub")
                    (out / "metadata.json").write_text(json.dumps(
                        {"trial_id": tid, "target_sensitivity": target_sensitivity,
                         "ensemble": {"kind": kind},
                         "data_fingerprint": "sha256:fake"}))  # the fake run.json's fingerprint

    def fake_compare(run_dir, test_dir=None):
        calls["compare"].append(test_dir)
        return {"outputs": {"report_md": str(Path(run_dir) / "report" / "report.md")}}

    monkeypatch.setattr(results.export, "export_winners", fake_export)
    monkeypatch.setattr(results.report.compare, "compare_models", fake_compare)
    lines: list[str] = []
    out = flow.run_flow(_Config(fake_run_dir), echo=lines.append)
    assert calls["export"] == ["both"] and len(calls["compare"]) == 1
    assert out["leaderboard"] == fake_run_dir / "leaderboard.csv" and out["leaderboard"].is_file()
    assert (fake_run_dir / "plots" / "cnn_top10.png").is_file()
    assert (fake_run_dir / "analysis" / "analysis.md").is_file()
    assert set(out["exports"]) == {"cnn", "ann"}
    text = flow.summary_text(out)
    assert "leaderboard" in text and "report.md" in text and "exports/cnn" in text

    # Rerun: exports naming the current winners are kept; a stale one is redone.
    flow.run_flow(_Config(fake_run_dir), echo=lines.append)
    assert calls["export"] == ["both"]
    meta = fake_run_dir / "exports" / "ann" / "rank1" / "metadata.json"
    meta.write_text(json.dumps({"trial_id": "0000", "target_sensitivity": 0.95,
                                "data_fingerprint": "sha256:fake"}))
    flow.run_flow(_Config(fake_run_dir), echo=lines.append)
    assert calls["export"] == ["both", "ann"]
    assert any("export is current" in line for line in lines)
    # A new --target-sensitivity, or data that changed since the export, re-exports.
    flow.run_flow(_Config(fake_run_dir), target_sensitivity=0.9, echo=lines.append)
    assert calls["export"] == ["both", "ann", "both"]
    cnn_meta = fake_run_dir / "exports" / "cnn" / "rank1" / "metadata.json"
    cnn_meta.write_text(json.dumps({"trial_id": "0002", "target_sensitivity": 0.9,
                                    "data_fingerprint": "sha256:older-data"}))
    flow.run_flow(_Config(fake_run_dir), target_sensitivity=0.9, echo=lines.append)
    assert calls["export"] == ["both", "ann", "both", "cnn"]


@pytest.mark.parametrize("argv, fragment", [
    (["--top-n", "0"], "--top-k and --top-n must be at least 1"),
    (["--top-k", "-1"], "--top-k and --top-n must be at least 1"),
    (["--test-dir", "/no/such/folder"], "is not an existing folder"),
])
def test_run_refuses_bad_options_before_the_search(argv, fragment, tmp_path: Path, monkeypatch,
                                                   capsys) -> None:
    import search.engine

    def no_search(cfg):
        raise AssertionError("the search must not start")

    monkeypatch.setattr(search.engine, "run_search_job", no_search)
    assert main(["run", "--run-dir", str(tmp_path / "r"), *argv]) == 2
    assert fragment in capsys.readouterr().err


@pytest.mark.parametrize("value", ["1.5", "0", "nan", "abc"])
def test_run_target_sensitivity_uses_the_export_validator(value: str, capsys) -> None:
    with pytest.raises(SystemExit) as exc:
        build_parser().parse_args(["run", "--target-sensitivity", value])
    assert exc.value.code == 2 and "--target-sensitivity" in capsys.readouterr().err
    with pytest.raises(ResultsError, match="--target-sensitivity"):
        flow.check_run_options(top_k=1, top_n=1, target_sensitivity=float("nan"),
                               test_dir=None, run_dir="r", data_dir=None)


def test_run_refuses_its_own_data_as_test_dir(synthetic_root: Path, tmp_path: Path) -> None:
    with pytest.raises(ResultsError, match="own data folder"):
        flow.check_run_options(top_k=1, top_n=1, target_sensitivity=0.95,
                               test_dir=synthetic_root, run_dir=tmp_path, data_dir=synthetic_root)


def test_skip_export(fake_run_dir: Path, monkeypatch) -> None:
    import search.engine

    monkeypatch.setattr(search.engine, "run_search_job", lambda cfg: {"status": "budget_exhausted"})
    lines: list[str] = []
    out = flow.run_flow(_Config(fake_run_dir, "cnn"), skip_export=True, echo=lines.append)
    assert out["report"] is None and out["exports"] == {}
    assert any("stopped early" in line for line in lines)


@pytest.mark.slow
def test_run_end_to_end_on_tiny_synthetic_data(synthetic_root: Path, tmp_path: Path,
                                               capsys) -> None:
    run_dir = tmp_path / "run"
    argv = ["run", "--data", str(synthetic_root), "--run-dir", str(run_dir), "--image-size", "16",
            "--folds", "2", "--max-trials", "1", "--max-epochs", "1", "--tuner", "random",
            "--quiet"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "Done. Results:" in out and str(run_dir / "leaderboard.csv") in out
    rows = (run_dir / "leaderboard.csv").read_text().splitlines()
    # The default objective is the geometric shortcut probe; clean val_auc is a column too.
    assert rows[0].startswith("rank,model,trial_id,status,mean_val_auc_geometric,"
                              "std_val_auc_geometric,fold0_val_auc_geometric")
    assert ",mean_val_auc," in rows[0]
    for fam in ("cnn", "ann"):
        for name in ("rank1", "rank1_single"):
            assert (run_dir / "exports" / fam / name / "model.keras").is_file()
    report = (run_dir / "report" / "report.md").read_text()
    assert "## Shortcut check" in report and "## Ensemble vs single model" in report
    assert (run_dir / "report" / "report.md").is_file()
    assert any((run_dir / "plots" / "cnn").glob("trial_*.png"))
    # Resumable: the same command again reuses the finished search and the exports.
    assert main(argv) == 0
    assert "export is current" in capsys.readouterr().out
    # kill -9 mid-trial, on real files: a copy of a finished trial without cv.json and its last
    # fold, with KerasTuner's trial.json still saying RUNNING.
    import shutil

    from results.leaderboard import build_leaderboard
    from search.config import AUTO_OBJECTIVES

    src = run_dir / "ann" / "trial_0000"
    dst = run_dir / "ann" / "trial_0099"
    shutil.copytree(src, dst)
    (dst / "cv.json").unlink()
    (dst / "fold1.json").unlink()
    state = json.loads((dst / "trial.json").read_text())
    state["status"] = "RUNNING"
    (dst / "trial.json").write_text(json.dumps(state))
    rows = build_leaderboard(run_dir, "ann")
    partial = next(r for r in rows if r["trial_id"] == "0099")
    assert partial["status"] == "RUNNING" and partial["rank"] is None
    ann_objective = AUTO_OBJECTIVES["ann"]  # --objective auto: the ANN ranks by its own
    assert partial[f"fold0_{ann_objective}"] is not None \
        and partial[f"fold1_{ann_objective}"] is None
    assert "interrupted" in partial["reason"]
