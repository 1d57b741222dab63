"""Plots: the PNG files of a run exist, are images, and are only redrawn when stale."""

from __future__ import annotations

from pathlib import Path

from results.plots import plot_run
from run_search import main

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_plot_run_writes_every_figure(fake_run_dir: Path) -> None:
    paths = plot_run(fake_run_dir)
    names = {p.relative_to(fake_run_dir / "plots").as_posix() for p in paths}
    assert {"cnn/trial_0000.png", "cnn/trial_0005.png", "ann/trial_0002.png",
            "cnn_objective_by_trial.png", "cnn_top10.png", "ann_objective_by_trial.png",
            "ann_top10.png"} <= names
    assert "cnn/trial_0004.png" not in names  # failed before any fold: nothing to draw
    for p in paths:
        assert p.read_bytes()[:8] == PNG_MAGIC


def test_plots_are_redrawn_only_when_stale(fake_run_dir: Path) -> None:
    first = plot_run(fake_run_dir, "ann")
    png = fake_run_dir / "plots" / "ann" / "trial_0000.png"
    mtime = png.stat().st_mtime_ns
    assert plot_run(fake_run_dir, "ann") == first
    assert png.stat().st_mtime_ns == mtime


def test_leaderboard_command_draws_plots(fake_run_dir: Path, capsys) -> None:
    assert main(["leaderboard", "--run-dir", str(fake_run_dir), "--model", "ann"]) == 0
    assert "plots:" in capsys.readouterr().out
    assert (fake_run_dir / "plots" / "ann_top10.png").is_file()
