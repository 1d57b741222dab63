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


def _drawn_figures(monkeypatch) -> list:
    """Figures passed to savefig, kept for inspection (the plot functions close them)."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.figure

    figs: list = []
    real = matplotlib.figure.Figure.savefig

    def grab(self, *args, **kwargs):
        real(self, *args, **kwargs)
        figs.append(self)

    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", grab)
    return figs


def test_epoch_axes_have_whole_number_ticks(fake_run_dir: Path, tmp_path: Path,
                                            monkeypatch) -> None:
    from results.report.figures import learning_curves
    from results.plots import plot_trial

    figs = _drawn_figures(monkeypatch)
    plot_trial(fake_run_dir / "ann" / "trial_0000", tmp_path / "t.png")
    learning_curves({"cnn": {"loss": [0.7, 0.6], "val_loss": [0.8, 0.7]}}, "val_auc",
                    tmp_path / "lc.png")
    for fig in figs:
        for ax in fig.axes:
            lo, hi = ax.get_xlim()
            ticks = [t for t in ax.get_xticks() if lo <= t <= hi]
            assert ticks and all(float(t).is_integer() for t in ticks), ticks


def test_confusion_matrix_labels_stay_clear_of_the_neighbouring_matrix(tmp_path: Path,
                                                                        monkeypatch) -> None:
    from results.report.figures import confusion_matrices

    figs = _drawn_figures(monkeypatch)
    cm = {"tn": 5, "fp": 1, "fn": 2, "tp": 30}
    metrics = {n: {"threshold": 0.5123, "confusion_at_threshold": cm, "confusion_at_0.5": cm}
               for n in ("cnn", "ann")}
    confusion_matrices(metrics, ["NORMAL", "PNEUMONIA"], tmp_path / "cm.png")
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    fig = figs[-1]
    canvas = FigureCanvasAgg(fig)  # pyplot closed the figure: draw it on a canvas of its own
    canvas.draw()
    renderer = canvas.get_renderer()
    for ax in fig.axes:
        for label in ax.get_xticklabels() + ax.get_yticklabels():
            if not label.get_text():
                continue
            box = label.get_window_extent(renderer)
            for other in fig.axes:
                assert not box.overlaps(other.get_window_extent(renderer)), label.get_text()
