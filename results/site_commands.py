"""Subcommands for using an export at a new site: ``calibrate`` and ``check``.

Thin handlers: parse -> ``results.site.workflow`` -> print. Keras is imported inside the library
calls, so ``run_search.py --help`` stays fast.
"""

from __future__ import annotations

import argparse
from typing import Any

from results.model_commands import unit_float

CALIBRATE_HELP = ("refit the threshold on a site's labelled films, with a guaranteed "
                  "sensitivity (site_thresholds/<name>.json beside the export)")
CHECK_HELP = ("check, without labels, whether a site's films score like the training site's "
              "(can the exported threshold be trusted there?)")


def open_unit(text: str) -> float:
    """argparse type of ``--min-sensitivity``, ``--confidence``, ``--alpha``: a number in (0, 1)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number in (0, 1), got {text!r}") from None
    if not 0.0 < value < 1.0:
        raise argparse.ArgumentTypeError(f"must be in (0, 1), got {text}")
    return value


def _pct(v: float | None) -> str:
    return "n/a" if v is None else f"{100 * v:.1f}%"


def _interval(ci: list[float] | None, confidence: str, sep: str = " (") -> str:
    if not ci:
        return ""
    return f"{sep}{confidence} CI {_pct(ci[0])}-{_pct(ci[1])}" + (")" if sep == " (" else "")


def format_calibration(r: dict[str, Any]) -> list[str]:
    """The lines ``calibrate`` prints."""
    conf = f"{r['confidence']:.0%}"
    lines = [f"site {r['site']}: {r['n_positive']} pneumonia and {r['n_negative']} normal films "
             f"from {r['data']}"]
    if r["feasible"]:
        p = r["at_threshold"]
        lines += [
            f"site threshold {r['threshold']:.4f}: sensitivity {_pct(p['sensitivity'])} on these "
            f"films ({p['tp']}/{p['n_positive']}), one-sided {conf} lower bound "
            f"{_pct(p['sensitivity_lower_bound'])} >= floor {_pct(r['floor'])}",
            f"  specificity {_pct(p['specificity'])} ({p['tn']}/{p['n_negative']}"
            f"{_interval(p['specificity_interval'], conf, '; ')})",
            f"  rule: {r['rule']}",
            f"written: {r['path']} (the export's threshold.json is unchanged); predict with "
            f"`run_search.py predict --model {r['export']} --site {r['site']} FILES`"]
    else:
        lines += [
            f"TOO FEW pneumonia films for the guarantee: with {r['n_positive']}, no threshold "
            f"has a one-sided {conf} lower bound on sensitivity >= {_pct(r['floor'])} (even "
            f"finding all of them). Label at least {r['more_positives_needed']} more pneumonia "
            f"film(s) ({r['min_positives']} in all; more than that lets the threshold rise and "
            "specificity improve). No site threshold was written."]
    e = r["exported"]
    if e is not None:
        lines.append(
            f"the exported threshold {e['threshold']:.4f} on these films: sensitivity "
            f"{_pct(e['sensitivity'])} (lower bound {_pct(e['sensitivity_lower_bound'])}), "
            f"specificity {_pct(e['specificity'])}"
            f"{_interval(e['specificity_interval'], conf)}")
    return lines


def format_check(r: dict[str, Any]) -> list[str]:
    """The lines ``check`` prints."""
    ref = r["reference"]
    lines = [f"site {r['site']}: {r['n']} films from {r['data']}"
             + (f" ({r['unreadable']} unreadable, skipped)" if r["unreadable"] else ""),
             r["verdict"],
             f"  distance {r['distance']:.3f} (the same site gives <= {r['critical_distance']:.3f} "
             f"in {1 - r['alpha']:.0%} of draws of {r['n']} films); called positive at the "
             f"exported threshold: {_pct(r['called_positive'])} (a mix of the training site's "
             f"classes at that share predicts {_pct(r['expected_called_positive'])})",
             f"  training site (out-of-fold, {ref['n']} films) at threshold "
             f"{ref['threshold']:.4f}: sensitivity {_pct(ref['sensitivity'])}, specificity "
             f"{_pct(ref['specificity'])}"]
    for name, p in r["probes"].items():
        lines.append(f"  probe {name} shift of those films: distance {p['distance']:.3f}, "
                     f"sensitivity {_pct(p['sensitivity'])}, specificity "
                     f"{_pct(p['specificity'])}")
    lines.append(f"written: {r['path']}")
    return lines


def _calibrate(args: argparse.Namespace) -> int:
    from results.site.workflow import calibrate_site

    r = calibrate_site(args.model, args.data, floor=args.min_sensitivity,
                       confidence=args.confidence, name=args.name, progress=not args.quiet)
    print("\n".join(format_calibration(r)))
    # Too few films is an answer, not a failure of the command, but no file was written.
    return 0 if r["feasible"] else 1


def _check(args: argparse.Namespace) -> int:
    from results.site.workflow import check_site

    r = check_site(args.model, args.data, name=args.name, alpha=args.alpha,
                   progress=not args.quiet, train_data=args.train_data)
    print("\n".join(format_check(r)))
    return 0


def register(subparsers: Any) -> None:
    """Adds ``calibrate`` and ``check`` to the CLI."""
    p = subparsers.add_parser("calibrate", help=CALIBRATE_HELP, description=CALIBRATE_HELP + ". "
                              "Picks the highest threshold whose one-sided Clopper-Pearson lower "
                              "bound on sensitivity, from the site's pneumonia films, meets "
                              "--min-sensitivity; reports specificity with its interval and "
                              "what the exported threshold gives on these films. Exit 1 when "
                              "the films are too few for the guarantee.")
    p.add_argument("--model", required=True, metavar="EXPORT_DIR",
                   help="an export folder, e.g. runs/NAME/exports/cnn/rank1")
    p.add_argument("--data", required=True, metavar="LOCAL_FOLDER",
                   help="the site's labelled films: NORMAL/ and PNEUMONIA/ (the training layout)")
    p.add_argument("--min-sensitivity", type=open_unit, default=0.90, metavar="S",
                   help="the floor the lower confidence bound on sensitivity must reach "
                        "(default 0.90)")
    p.add_argument("--confidence", type=open_unit, default=0.95, metavar="C",
                   help="one-sided confidence of that bound (default 0.95)")
    p.add_argument("--name", default=None, help="the site's name (default: the folder's name)")
    p.add_argument("--quiet", action="store_true", help="no decoding progress")
    p.set_defaults(func=_calibrate)

    p = subparsers.add_parser("check", help=CHECK_HELP, description=CHECK_HELP + ". Compares "
                              "the site's score distribution with the out-of-fold one of the "
                              "training site (computed once from the run folder and cached as "
                              "site_reference.npz beside the export) and with the shortcut "
                              "probes' shifted copies of it.")
    p.add_argument("--model", required=True, metavar="EXPORT_DIR",
                   help="a fold-ensemble export folder, e.g. runs/NAME/exports/cnn/rank1")
    p.add_argument("--data", required=True, metavar="UNLABELLED_FOLDER",
                   help="the site's films (walked recursively; labels, if any, are not used)")
    p.add_argument("--name", default=None, help="the site's name (default: the folder's name)")
    p.add_argument("--alpha", type=open_unit, default=0.05,
                   help="warn when the p-value is below this (default 0.05)")
    p.add_argument("--train-data", default=None, metavar="DIR",
                   help="the run's training data folder, when it moved since the search; read "
                        "only by the first check of an export (which caches "
                        "site_reference.npz; copy the export folder with it)")
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    p.set_defaults(func=_check)
