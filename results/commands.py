"""Subcommands ``leaderboard``, ``analyze`` and ``run`` (the whole flow in one command).

Thin handlers: parse -> library call -> print. matplotlib and Keras are imported inside the
handlers so ``run_search.py --help`` stays fast.
"""

from __future__ import annotations

import argparse

from results.leaderboard_output import FORMATS, write_leaderboard

DEFAULT_RUN_DIR = "runs/default"


def _add_run_and_model(parser: argparse.ArgumentParser) -> None:
    """The ``--run-dir`` and ``--model`` options shared by the commands that read a run."""
    parser.add_argument("--run-dir", default=DEFAULT_RUN_DIR,
                        help="run folder (default: %(default)s)")
    parser.add_argument("--model", choices=("cnn", "ann", "transfer", "both"), default="both",
                        help="model family; both = every family the run searched "
                             "(default: %(default)s)")


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
