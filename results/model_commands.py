"""Subcommands over the exported models: ``export``, ``compare``, ``predict``.

Thin handlers: parse -> library call -> print. Keras and friends are imported inside the handlers
so ``run_search.py --help`` stays fast.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from results.errors import ResultsError

EXPORT_HELP = ("export each family's best trial(s): a weighted ensemble chosen over the "
               "finished configurations (default), the average of the winner's fold models "
               "or one retrained model, with threshold and metadata")
COMPARE_HELP = "evaluate the exported CNN and ANN side by side and write the report"
PREDICT_HELP = "predict image files or folders with an exported model"


def _export(args: argparse.Namespace) -> int:
    from results.export import export_winners

    results = export_winners(args.run_dir, model=args.model, top_n=args.top_n,
                             target_sensitivity=args.target_sensitivity, verbose=args.verbose,
                             ensemble=args.ensemble, with_single=not args.no_single,
                             data=args.data, weights=args.weights,
                             max_members=args.ensemble_max_members)
    print(f"{len(results)} model(s) exported under {args.run_dir}/exports; next: "
          f"`run_search.py compare --run-dir {args.run_dir}`")
    return 0


def _compare(args: argparse.Namespace) -> int:
    from results.report.compare import compare_models

    compare_models(args.run_dir, test_dir=args.test_dir, out_dir=args.out, n_boot=args.n_boot,
                   data=args.data)
    return 0


def _predict(args: argparse.Namespace) -> int:
    from results.predict import predict_paths, print_summary, threshold_warning

    threshold = args.threshold
    if args.site is not None:
        from results.site.site_files import site_threshold

        if threshold is not None:
            raise ResultsError("give --threshold or --site, not both: --site NAME uses the "
                               "threshold `calibrate` wrote for that site.")
        threshold = float(site_threshold(args.model, args.site)["threshold"])
    rows = predict_paths(args.model, args.paths, out=args.out, threshold=threshold)
    warning = threshold_warning(rows)
    if warning:
        print(warning, file=sys.stderr)
    if rows and all(r["error"] for r in rows):
        # Nothing could be predicted: bad input (exit 2, as the README says), not a partial run.
        listing = "; ".join(f"{r['path']} ({r['error']})" for r in rows[:5])
        more = f"; and {len(rows) - 5} more" if len(rows) > 5 else ""
        raise ResultsError(
            f"none of the {len(rows)} file(s) could be predicted: {listing}{more}. Pass "
            ".jpeg/.jpg/.png X-ray images or folders holding them.")
    if args.out:
        n_err = sum(1 for r in rows if r["error"])
        print(f"{len(rows) - n_err} predicted, {n_err} unreadable -> {args.out}")
        for r in rows:
            if r["error"]:
                print(f"{r['path']}  ERROR: {r['error']}")
    else:
        print_summary(rows)
    # Like ls or grep: the readable files are predicted, but a failure is not silent.
    return 1 if any(r["error"] for r in rows) else 0


def add_ensemble_argument(parser: argparse.ArgumentParser) -> None:
    """``--ensemble select | folds | none | top N`` and ``--ensemble-max-members`` (shared by
    ``export`` and ``run``)."""
    parser.add_argument("--ensemble", nargs="+", default=None, metavar="KIND",
                        help="select (default): greedy ensemble selection (Caruana) over the "
                             "finished configurations' out-of-fold predictions, weights in "
                             "ensemble.json; folds: average the winner's fold models, no "
                             "retraining; top N: average the fold models of the N best "
                             "distinct configurations; none: retrain one model on the "
                             "training pool")
    parser.add_argument("--ensemble-max-members", type=int, default=5, metavar="M",
                        help="most distinct configurations in a select ensemble (default: "
                             "%(default)s; 1 for one configuration's fold ensemble)")


def unit_float(text: str) -> float:
    """argparse type of ``--target-sensitivity`` and ``--threshold``: a number in (0, 1]."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number in (0, 1], got {text!r}") from None
    if not 0.0 < value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be in (0, 1], got {text}")
    return value


_unit_float = unit_float  # the former private name


def add_data_argument(parser: argparse.ArgumentParser) -> None:
    """``--data DIR``: where the run's data is now, when it moved since the search."""
    parser.add_argument("--data", default=None, metavar="DIR",
                        help="the run's data folder, when it moved since the search (default: "
                             "the folder run.json records); the files must be the same")


def register(subparsers: Any) -> None:
    """Adds ``export``, ``compare`` and ``predict`` to the CLI."""
    p = subparsers.add_parser("export", help=EXPORT_HELP, description=EXPORT_HELP + ". The "
                              "decision threshold of an ensemble is picked on the out-of-fold "
                              "predictions of its fold models (all k validation folds, where "
                              "they were also early-stopped, so it reads optimistic); a "
                              "retrained model's on its own validation slice.")
    p.add_argument("--run-dir", required=True, help="the run folder of a search")
    p.add_argument("--model", choices=("cnn", "ann", "transfer", "both"), default="both",
                   help="which family to export (default: both, every family the run "
                        "searched)")
    p.add_argument("--top-n", type=int, default=1, metavar="N",
                   help="export the N best trials of each family as rank1..rankN (default 1)")
    add_ensemble_argument(p)
    p.add_argument("--no-single", action="store_true",
                   help="with an ensemble, do not also retrain the rank-1 trial as one model "
                        "(rank1_single, which compare shows beside the ensemble)")
    p.add_argument("--target-sensitivity", type=unit_float, default=0.95, metavar="S",
                   help="the exported threshold is the highest one reaching this sensitivity "
                        "on the out-of-fold predictions, or a retrained model's slice "
                        "(default 0.95); the Youden threshold is recorded too")
    p.add_argument("--verbose", type=int, default=0, choices=(0, 1, 2),
                   help="Keras fit verbosity (default 0)")
    add_data_argument(p)
    p.add_argument("--weights", default=None, metavar="PATH",
                   help="transfer runs: the backbone weights file the search started from, "
                        "when it moved since (matched by sha256: any byte-identical copy); "
                        "only the retrained model (--ensemble none, rank1_single) reads it")
    p.set_defaults(func=_export)

    p = subparsers.add_parser("compare", help=COMPARE_HELP, description=COMPARE_HELP + " "
                              "(report.md, self-contained report.html, metrics.json/csv, "
                              "figures).")
    p.add_argument("--run-dir", required=True, help="the run folder holding exports/")
    p.add_argument("--test-dir", default=None,
                   help="a Kaggle-style folder to test on (its test/ folder when present) "
                        "instead of the run's recorded test split")
    p.add_argument("--out", default=None, help="output folder (default RUN_DIR/report)")
    p.add_argument("--n-boot", type=int, default=1000,
                   help="bootstrap resamples for the 95%% intervals (default 1000)")
    add_data_argument(p)
    p.set_defaults(func=_compare)

    p = subparsers.add_parser("predict", help=PREDICT_HELP, description=PREDICT_HELP + "; "
                              "prints path, probability of the positive class and the label at "
                              "the exported threshold. Unreadable files are reported and "
                              "skipped.")
    p.add_argument("--model", required=True, metavar="EXPORT_DIR",
                   help="an export folder, e.g. runs/NAME/exports/cnn/rank1")
    p.add_argument("paths", nargs="+", metavar="PATH", help="image files or folders")
    p.add_argument("--out", default=None, metavar="FILE.csv", help="write a CSV instead of a table")
    p.add_argument("--threshold", type=unit_float, default=None,
                   help="override the exported threshold")
    p.add_argument("--site", default=None, metavar="NAME",
                   help="use the threshold `calibrate` wrote for this site "
                        "(EXPORT_DIR/site_thresholds/NAME.json)")
    p.set_defaults(func=_predict)
