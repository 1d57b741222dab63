"""Subcommands ``leaderboard``, ``analyze`` and ``run`` (the whole flow in one command).

Thin handlers: parse -> library call -> print. matplotlib and Keras are imported inside the
handlers so ``run_search.py --help`` stays fast.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from results.errors import ResultsError

DEFAULT_RUN_DIR = "runs/default"
FORMATS = ("csv", "md", "json")
_EXT_FORMAT = {".csv": "csv", ".md": "md", ".markdown": "md", ".json": "json"}


def _add_run_and_model(parser: argparse.ArgumentParser) -> None:
    """The ``--run-dir`` and ``--model`` options shared by the commands that read a run."""
    parser.add_argument("--run-dir", default=DEFAULT_RUN_DIR,
                        help="run folder (default: %(default)s)")
    parser.add_argument("--model", choices=("cnn", "ann", "both"), default="both",
                        help="model family (default: %(default)s)")


def register(subparsers: argparse._SubParsersAction) -> None:
    """Adds the ``leaderboard``, ``analyze`` and ``run`` subcommands."""
    p = subparsers.add_parser(
        "leaderboard", help="rank the trials of a run (works while a search runs)",
        description=(
            "One row per trial, ranked within each model family by the cross-validated "
            "objective (columns like scikit-learn's cv_results_). Prints the top-k; writes "
            "every trial, all columns, to RUN_DIR/leaderboard.<format> (never cut to the "
            "top-k) and the printed rows to --out when given; draws learning-curve plots into "
            "RUN_DIR/plots. Reads only the trial files, so it is fast and works during a "
            "search and after an interrupted one."))
    _add_run_and_model(p)
    p.add_argument("--top-k", type=int, default=10, metavar="K",
                   help="best K completed trials per family to print and to write to --out "
                        "(default: %(default)s); RUN_DIR/leaderboard.<format> keeps every trial")
    p.add_argument("--out", default=None, metavar="FILE",
                   help="also write the printed rows (top-k, --all) to FILE; without it, "
                        "RUN_DIR/leaderboard.<format> gets every trial")
    p.add_argument("--format", choices=FORMATS, default=None,
                   help="file format (default: from --out's extension, else csv)")
    p.add_argument("--all", action="store_true", dest="include_all",
                   help="also list every running and failed trial with its reason (completed "
                        "ones still limited by --top-k)")
    p.add_argument("--no-plots", action="store_true", help="skip the PNG plots")
    p.set_defaults(func=leaderboard_command)

    a = subparsers.add_parser(
        "analyze", help="which search dimensions mattered (tables + figure)",
        description=(
            "From the leaderboard rows: objective by value of every categorical dimension, "
            "Spearman correlation for numeric ones, dimensions ranked by effect size, and the "
            "notes' hypothesis 'dropout 0.2 suits low->high, 0.5 suits high->low' tested. "
            "Writes analysis.md, analysis.json and analysis.png."))
    _add_run_and_model(a)
    a.add_argument("--out", default=None, metavar="DIR",
                   help="output folder (default: RUN_DIR/analysis)")
    a.set_defaults(func=analyze_command)

    from results.flow import add_run_arguments

    r = subparsers.add_parser(
        "run", help="the whole flow: search both families, leaderboard, export, compare",
        description=(
            "Searches CNN and ANN with cross-validation, then writes the leaderboard and plots, "
            "retrains and exports each family's winner, and compares them on the test split. "
            "Resumable: rerun the same command after an interruption. Without --data it uses "
            "the built-in synthetic data with quickstart settings (about 10 minutes on 2 CPU "
            "cores)."))
    add_run_arguments(r)
    r.set_defaults(func=run_command)


def resolve_output(run_dir: Path, out: str | None, fmt: str | None
                   ) -> tuple[Path, Path | None, str]:
    """The run's full leaderboard file, the ``--out`` file (or None) and its format (pure).

    The run's own ``leaderboard.<format>`` always holds every trial; ``--top-k`` and ``--all``
    shape only what is printed and what ``--out`` receives, so a quick ``--top-k 2`` never
    truncates the file the report and the benchmarks read.
    """
    if out is not None:
        path = Path(out)
        fmt = fmt or _EXT_FORMAT.get(path.suffix.lower()) or "csv"
        return run_dir / "leaderboard.csv", path, fmt
    fmt = fmt or "csv"
    return run_dir / f"leaderboard.{fmt}", None, fmt


def write_leaderboard(run_dir: str | Path, *, family: str = "both", top_k: int | None = 10,
                      include_all: bool = False, out: str | None = None, fmt: str | None = None,
                      plots: bool = True, echo=print) -> dict:
    """Builds and prints a leaderboard, writes the run's full one (and ``out``), draws plots.

    Args:
        run_dir: the run folder.
        family: ``cnn``, ``ann`` or ``both``.
        top_k: completed trials per family to print and to write to ``out``.
        include_all: also print (and write to ``out``) every running and failed trial.
        out: an extra file for the rows shown; the run's ``leaderboard.<fmt>`` always gets
            every trial.
        fmt: ``csv``, ``md`` or ``json`` (default: from ``out``'s extension, else csv).
        plots: draw the PNG plots into ``run_dir/plots``.
        echo: where the lines go.

    Returns:
        ``{"rows" (shown), "path" (the full file, None when it could not be written), "out",
        "plots", "notes"}``.
    """
    from results.leaderboard import WRITERS, build_leaderboard, format_table, run_objective
    from results.leaderboard import select_rows
    from results.output_paths import check_output_file

    if top_k is not None and top_k < 1:
        raise ResultsError(f"--top-k must be at least 1, got {top_k}.")
    run_dir = Path(run_dir)
    full_path, out_path, fmt = resolve_output(run_dir, out, fmt)
    if out_path is not None:  # refused before the work, not after it
        check_output_file(out_path)
    notes: list[str] = []
    rows = build_leaderboard(run_dir, family, notes=notes)
    objective, direction = run_objective(run_dir)
    shown = select_rows(rows, top_k=top_k, include_all=include_all)
    counts = {s: sum(1 for r in rows if r["status"] == s) for s in ("COMPLETED", "RUNNING", "FAILED")}
    echo(f"{run_dir}: objective {objective} ({direction}); "
         + ", ".join(f"{n} {s.lower()}" for s, n in counts.items()))
    echo(format_table(shown, objective))
    if not include_all and (counts["RUNNING"] or counts["FAILED"]):
        echo("(running and failed trials hidden; --all lists them with their reason)")
    for note in notes:
        echo(f"note: {note}")
    written: Path | None = full_path
    try:
        WRITERS[full_path.suffix.lstrip(".")](rows, full_path)
    except OSError as err:
        # A read-only or full run folder (an archived run, another user's): the table above is
        # what the user asked for, so say why the file is stale instead of failing.
        written = None
        echo(f"warning: could not write the full leaderboard {full_path} "
             f"({err.strerror or err}); the table above is complete. Make the run folder "
             f"writable, or pass --out FILE to save the rows elsewhere.")
    if written is not None:
        echo(f"leaderboard: {full_path} (every trial)")
    if out_path is not None:
        if written is not None and out_path.resolve() == full_path.resolve():
            echo(f"{out_path} is the run's full leaderboard, so it holds every trial")
        else:
            WRITERS[fmt](shown, out_path)
            echo(f"rows shown: {out_path}")
    pngs: list[Path] = []
    if plots:
        from results.plots import plot_run

        try:
            pngs = plot_run(run_dir, family, top_k=top_k or 10)
        except OSError as err:
            echo(f"warning: plots skipped: cannot write into {run_dir / 'plots'} "
                 f"({err.strerror or err}); --no-plots skips them.")
        if pngs:
            echo(f"plots: {run_dir / 'plots'} ({len(pngs)} PNG files)")
    return {"rows": shown, "path": written, "out": out_path, "plots": pngs, "notes": notes}


def leaderboard_command(args: argparse.Namespace) -> int:
    """Handler of ``run_search.py leaderboard``."""
    write_leaderboard(args.run_dir, family=args.model, top_k=args.top_k,
                      include_all=args.include_all, out=args.out, fmt=args.format,
                      plots=not args.no_plots)
    return 0


def analyze_command(args: argparse.Namespace) -> int:
    """Handler of ``run_search.py analyze``."""
    from results.analysis import write_analysis

    paths = write_analysis(args.run_dir, args.model, args.out)
    print(paths["md"].read_text(encoding="utf-8"))
    print(f"analysis: {paths['md']}, {paths['json']}, figure {paths['png']}")
    return 0


def run_command(args: argparse.Namespace) -> int:
    """Handler of ``run_search.py run``."""
    from results.flow import run_flow_from_args

    return run_flow_from_args(args)
