"""Progress lines: content, --quiet, search.log."""

from __future__ import annotations

import io
from pathlib import Path

from search.watch.progress import Progress, format_duration


def test_trial_line_has_everything_and_goes_to_the_log(tmp_path):
    out = io.StringIO()
    p = Progress(tmp_path / "search.log", quiet=False, stream=out)
    text = p.trial_line(family="cnn", trial_id="0002", done=3, total=10, status="COMPLETED",
                        objective="val_auc", fold_scores=[0.9, 0.8, 0.85], mean=0.85,
                        std=0.04, best=0.9, best_id="0001", diagnosis="good_fit")
    for part in ("trial 3/10", "0.900 0.800 0.850", "0.8500 +- 0.0400", "best 0.9000 (trial 0001)",
                 "elapsed", "ETA", "good_fit"):
        assert part in text
    assert text in out.getvalue() and text in (tmp_path / "search.log").read_text()
    assert not p.show_bar  # StringIO is not a terminal


def test_quiet_keeps_the_log_only(tmp_path):
    out = io.StringIO()
    p = Progress(tmp_path / "search.log", quiet=True, stream=out)
    p.trial_line(family="ann", trial_id="0000", done=1, total=2, status="FAILED",
                 objective="val_auc", fold_scores=[], mean=None, std=None, best=None,
                 best_id=None, diagnosis=None, reason="x" * 300)
    assert out.getvalue() == ""
    log = (tmp_path / "search.log").read_text()
    assert "FAILED (" in log and "..." in log and "best -" in log


def test_format_duration():
    assert format_duration(5) == "5s" and format_duration(75) == "1m15s"
    assert format_duration(3700) == "1h01m"


def test_data_information_reaches_search_log_once(tmp_path, capsys):
    """What data_pipeline tells the user while a search loads its data (train/ images left out
    because their patient is in test/) is in search.log, printed once, without a source line."""
    import logging
    import sys

    from search.config import SearchConfig
    from search.engine import _prepare_data

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "data_pipeline"))
    from test_folds_splits import _leaky_tree

    root = _leaky_tree(tmp_path / "data")
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    config = SearchConfig(data=str(root), folds=2, image_size=16, run_dir=str(run_dir),
                          objective="val_auc")
    progress = Progress(run_dir / "search.log", quiet=True)
    stderr_handler = logging.StreamHandler(sys.stderr)  # as the CLI's (data_pipeline.cli)
    logging.getLogger("data_pipeline").addHandler(stderr_handler)
    try:
        _prepare_data(config, run_dir, progress, resuming=False)
    finally:
        logging.getLogger("data_pipeline").removeHandler(stderr_handler)
    log = (run_dir / "search.log").read_text()
    assert "warning: 2 train/ image(s)" in log and "left out of training" in log
    err = capsys.readouterr().err
    assert "2 train/ image(s)" not in err  # quiet: the log has it, the terminal does not
    assert logging.getLogger("data_pipeline").propagate  # restored after the block
