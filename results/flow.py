"""``run_search.py run``: search both families, then leaderboard + plots, analysis, export, compare.

Each step is resumable, so rerunning the same command after an interruption picks up where it
stopped: the search resumes from its finished folds (``search``'s own resume), an export whose
``metadata.json`` already names the current winner is kept, and the leaderboard, plots, analysis
and report are cheap to redraw.

The ``run`` options are ``search``'s options (copied from its parser, so they never drift) plus a
few of the later steps'. Without ``--data`` the built-in synthetic data is used with the
quickstart preset (:data:`QUICKSTART`), sized to finish in about 10 minutes on 2 CPU cores; any
option given on the command line wins over the preset.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from results.errors import ResultsError
from results.model_commands import add_ensemble_argument, unit_float

if TYPE_CHECKING:
    from search.config import SearchConfig

# Quickstart preset for the built-in synthetic data (no --data): small images, few short trials.
# max_epochs 6: Hyperband's first round trains 2 epochs (a third; 1 with max_epochs 3, too few for
# the basic model to learn the synthetic set); of 4 trials, 3 configurations train 2 epochs and
# the best continues to 6 (search.tuners.oracles.hyperband_plan).
QUICKSTART: dict[str, Any] = {"image_size": 64, "folds": 3, "max_trials": 4, "max_epochs": 6,
                              "patience": 2, "run_dir": "runs/quickstart"}
# `run --preset gpu`: where a user of one modern GPU should start. 128 px (the resolution a GPU
# user picks first; the budgets scale with it, spaces/budget.py), mixed precision (float16 on a
# GPU), random search with up to 30 epochs and patience 6 so slow-learning augmented models get
# a fair budget (README, "Selecting for new patients"), 30 trials per family. Budgets sized
# for one GPU rather than scaled from 2 CPU cores: 50M parameters and 20 forward GFLOPs per
# image take every pretrained backbone of the transfer family at 224 px (ResNet101: 42.7M,
# 15.1 GFLOPs; Xception 20.9M, 9.1 GFLOPs), which the size-scaled CPU defaults refuse.
GPU_PRESET: dict[str, Any] = {"image_size": 128, "folds": 3, "max_trials": 30, "max_epochs": 30,
                              "patience": 6, "tuner": "random", "mixed_precision": "auto",
                              "max_params": 50_000_000, "max_gflops": 20.0,
                              "run_dir": "runs/gpu"}
PRESETS = {"quickstart": QUICKSTART, "gpu": GPU_PRESET}
_PRESET_KEYS = tuple(dict.fromkeys([*QUICKSTART, *GPU_PRESET]))


def _search_parser() -> argparse.ArgumentParser:
    """``search``'s own parser, built by its register() so ``run`` shares its options."""
    from search import commands as search_commands

    holder = argparse.ArgumentParser(add_help=False)
    sub = holder.add_subparsers()
    search_commands.register(sub)
    return sub.choices["search"]


def add_run_arguments(parser: argparse.ArgumentParser) -> None:
    """Adds search's options (preset ones default to None: filled in by :func:`resolve_options`)
    and the later steps' options to the ``run`` parser."""
    search = _search_parser()
    seen = {a.dest for a in parser._actions}
    for action in search._actions:
        if action.dest in seen or isinstance(action, argparse._HelpAction):
            continue
        # Reuse the Action object: same flags, type, choices and help as `search`.
        parser._add_action(action)
    search_defaults = {k: search.get_default(k) for k in _PRESET_KEYS}
    # Note: set_defaults also rewrites the shared Action objects' defaults; `search` itself is
    # unaffected because _search_parser() built a private copy.
    parser.set_defaults(**{k: None for k in _PRESET_KEYS})
    parser.set_defaults(_search_defaults=search_defaults)
    parser.add_argument("--preset", choices=tuple(PRESETS), default=None,
                        help="quickstart (the default without --data) or gpu: "
                             + ", ".join(f"--{k.replace('_', '-')} {v}"
                                         for k, v in GPU_PRESET.items())
                             + "; options given on the command line win")
    g = parser.add_argument_group("after the search")
    g.add_argument("--top-k", type=int, default=10, metavar="K",
                   help="leaderboard rows per family (default: %(default)s)")
    g.add_argument("--top-n", type=int, default=1, metavar="N",
                   help="winners to retrain and export per family (default: %(default)s)")
    add_ensemble_argument(g)
    g.add_argument("--target-sensitivity", type=unit_float, default=0.95, metavar="S",
                   help="sensitivity the exported threshold must reach (default: %(default)s)")
    g.add_argument("--test-dir", default=None, metavar="DIR",
                   help="compare on this Kaggle-style folder instead of the run's test split")
    g.add_argument("--skip-export", action="store_true",
                   help="stop after the leaderboard, plots and analysis (no export, no compare)")
    parser.epilog = ("Preset without --data (built-in synthetic data): "
                     + ", ".join(f"--{k.replace('_', '-')} {v}" for k, v in QUICKSTART.items())
                     + ". With --data the search defaults apply.")


def resolve_options(args: argparse.Namespace) -> argparse.Namespace:
    """Fills the preset options the user left out: ``--preset``'s, else quickstart's without
    --data, else search's own defaults."""
    defaults = getattr(args, "_search_defaults", {}) or {}
    name = getattr(args, "preset", None) or ("quickstart" if args.data is None else None)
    preset = PRESETS.get(name, {}) if name else {}
    for key in _PRESET_KEYS:
        if getattr(args, key, None) is None:
            setattr(args, key, preset.get(key, defaults.get(key)))
    return args


def check_run_options(*, top_k: int, top_n: int, target_sensitivity: float,
                      test_dir: str | Path | None, run_dir: str | Path,
                      data_dir: str | Path | None, ensemble: Any = None,
                      max_members: int = 5) -> None:
    """Validates the options of the steps after the search, so a mistake is refused before a
    long search rather than after it.

    Raises:
        ResultsError: naming the option, the rule and the fix.
    """
    if top_k < 1 or top_n < 1:
        raise ResultsError(f"--top-k and --top-n must be at least 1; got {top_k} and {top_n}.")
    from results.export import check_max_members, parse_ensemble

    parse_ensemble(ensemble)
    check_max_members(max_members)
    try:
        unit_float(str(target_sensitivity))
    except (argparse.ArgumentTypeError, ValueError) as err:
        raise ResultsError(f"--target-sensitivity {target_sensitivity}: {err}; it is the "
                           "sensitivity the exported threshold must reach, e.g. 0.95.") from None
    if test_dir is not None:
        from results.report.evaluation_data import check_test_dir

        check_test_dir(test_dir, run_dir, data_dir)


def _current_data_fingerprint(run_dir: Path, run: dict[str, Any]) -> str | None:
    """The run data's fingerprint now (file list only), else the one run.json recorded."""
    cfg = run.get("config") or {}
    try:
        import data_pipeline

        return data_pipeline.data_fingerprint(cfg["data"], image_size=int(cfg["image_size"]),
                                              color_mode=cfg["color_mode"])
    except Exception:  # noqa: BLE001 - data gone or run.json incomplete: trust the record
        return run.get("data_fingerprint")


def _export_is_current(run_dir: Path, family: str, top_n: int,
                       target_sensitivity: float = 0.95, ensemble: Any = None,
                       max_members: int = 5) -> bool:
    """True when exports/<family>/rank1..N already hold the current best trials, exported with
    this ``target_sensitivity`` and ensemble kind from the data as it is now (same
    fingerprint). A ``select`` export is current when the selection redone from the
    out-of-fold files gives the same members and weights (without those files: the winner's
    fold ensemble it falls back to)."""
    from results.ensemble import family_selection
    from results.export import parse_ensemble
    from results.leaderboard import best_trials, load_run_config, read_json
    from results.model_io import export_path

    kind, _ = parse_ensemble(ensemble)
    best = best_trials(run_dir, family, 1 if kind in ("top", "select") else top_n)
    if not best:
        return True  # nothing to export for this family
    selected = None
    if kind == "select":
        found = family_selection(run_dir, family, load_run_config(run_dir),
                                 max_members=max_members)
        if found is None:
            kind = "folds"  # what export falls back to
        else:
            selected, best = found[0], found[1][:1]
    fingerprint = _current_data_fingerprint(run_dir, load_run_config(run_dir))
    for rank, trial in enumerate(best, start=1):
        out = run_dir / "exports" / family / f"rank{rank}"
        meta = read_json(out / "metadata.json")
        if not (isinstance(meta, dict) and str(meta.get("trial_id")) == str(trial["trial_id"])
                and (out / "model.keras").is_file()):
            return False
        target = meta.get("target_sensitivity")
        if target is None:  # exports from before metadata carried it
            target = (read_json(out / "threshold.json") or {}).get("target_sensitivity")
        if target is None or abs(float(target) - float(target_sensitivity)) > 1e-12:
            return False
        if meta.get("data_fingerprint") != fingerprint:
            return False
        if (meta.get("ensemble") or {}).get("kind", "none") != kind or kind == "top":
            return False  # a top-N ensemble's members may change with any new trial
        if selected is not None and dict(zip(
                meta["ensemble"].get("members") or [],
                meta["ensemble"].get("weights") or [])) != selected.weights:
            return False
        if kind != "none" and rank == 1:
            single = read_json(export_path(run_dir, family, 1, single=True) / "metadata.json")
            if not (isinstance(single, dict)
                    and str(single.get("trial_id")) == str(trial["trial_id"])):
                return False
    return True


def run_flow(config: SearchConfig, *, top_k: int = 10, top_n: int = 1,
             target_sensitivity: float = 0.95, test_dir: str | None = None,
             skip_export: bool = False, echo: Callable[[str], Any] = print,
             ensemble: Any = None, max_members: int = 5) -> dict[str, Any]:
    """Runs the whole flow and returns where everything went.

    Every option is checked (:func:`check_run_options`) before the search starts. Each step is
    resumable: rerunning the same call after an interruption resumes the search, keeps exports
    that still name the current winners (same trial, ``target_sensitivity`` and data
    fingerprint) and redraws the rest.

    Args:
        config: a ``search.config.SearchConfig``.
        top_k: leaderboard rows per family.
        top_n: winners exported per family.
        target_sensitivity: the exported threshold's sensitivity target.
        test_dir: optional Kaggle-style test folder for the comparison.
        skip_export: stop after leaderboard, plots and analysis.
        echo: where the step lines go.
        ensemble: ``--ensemble`` words (default ``select``).
        max_members: ``--ensemble-max-members``.

    Returns:
        ``{"run_dir", "search", "leaderboard", "plots", "analysis", "exports", "report",
        "timings"}``.

    Raises:
        ResultsError: a bad option (before the search), or a later step that cannot run.
    """
    from results.leaderboard_output import write_leaderboard
    from search.engine import run_search_job

    run_dir = Path(config.run_dir)
    check_run_options(top_k=top_k, top_n=top_n, target_sensitivity=target_sensitivity,
                      test_dir=None if skip_export else test_dir, run_dir=run_dir,
                      data_dir=getattr(config, "data", None), ensemble=ensemble,
                      max_members=max_members)
    timings: dict[str, float] = {}
    out: dict[str, Any] = {"run_dir": run_dir, "exports": {}, "report": None, "analysis": None}

    def step(name: str) -> float:
        """Prints the step's header line and returns its start time."""
        echo(f"== {name}")
        return time.monotonic()

    t = step("search")
    out["search"] = run_search_job(config)
    timings["search"] = time.monotonic() - t
    status = out["search"].get("status")

    t = step("leaderboard and plots")
    board = write_leaderboard(run_dir, family=config.model, top_k=top_k, echo=echo)
    out["leaderboard"], out["plots"] = board["path"], run_dir / "plots"
    timings["leaderboard"] = time.monotonic() - t

    t = step("analysis")
    try:
        from results.analysis import write_analysis

        out["analysis"] = write_analysis(run_dir, config.model)["md"]
        echo(f"analysis: {out['analysis']}")
    except ResultsError as err:  # e.g. no completed trial yet: the rest can still go on
        echo(f"note: analysis skipped: {err}")
    timings["analysis"] = time.monotonic() - t

    if status != "completed":
        echo(f"note: the search stopped early ({status}); exporting the best trials so far.")
    if not skip_export:
        from results.export import export_winners
        from results.report.compare import compare_models

        t = step("export")
        families = ("cnn", "ann") if config.model == "both" else (config.model,)
        todo = [f for f in families
                if not _export_is_current(run_dir, f, top_n, target_sensitivity, ensemble,
                                          max_members)]
        for fam in families:
            if fam not in todo:
                echo(f"{fam}: export is current ({run_dir / 'exports' / fam}); kept")
        if todo:
            export_winners(run_dir, model=todo[0] if len(todo) == 1 else "both", top_n=top_n,
                           target_sensitivity=target_sensitivity, ensemble=ensemble,
                           max_members=max_members)
        out["exports"] = {f: run_dir / "exports" / f for f in families
                          if (run_dir / "exports" / f).is_dir()}
        timings["export"] = time.monotonic() - t

        t = step("compare")
        result = compare_models(run_dir, test_dir=test_dir)
        outputs = result.get("outputs") or {}
        out["report"] = Path(outputs.get("report_md") or outputs.get("md")
                             or run_dir / "report" / "report.md")
        timings["compare"] = time.monotonic() - t
    out["timings"] = timings
    from search.config import tensorboard_dir

    tb = tensorboard_dir(config) if hasattr(config, "tensorboard") else None
    out["tensorboard"] = tb if tb is not None and tb.is_dir() else None
    return out


def summary_text(out: dict[str, Any]) -> str:
    """The closing lines: where the leaderboard, plots, exports and report are."""
    lines = ["", "Done. Results:"]
    lines.append(f"  leaderboard  {out['leaderboard']}")
    lines.append(f"  plots        {out['plots']}")
    if out.get("analysis"):
        lines.append(f"  analysis     {out['analysis']}")
    for fam, path in (out.get("exports") or {}).items():
        lines.append(f"  export {fam:<5} {path}")
    if out.get("report"):
        lines.append(f"  report       {out['report']} (and report.html beside it)")
    if out.get("tensorboard"):
        lines.append(f"  tensorboard  tensorboard --logdir {out['tensorboard']}")
    timings = out.get("timings") or {}
    if timings:
        lines.append("  wall time    " + ", ".join(f"{k} {v:.0f}s" for k, v in timings.items()))
    return "\n".join(lines)


def run_flow_from_args(args: argparse.Namespace, argv: list[str] | None = None) -> int:
    """Handler body of ``run_search.py run``: options -> SearchConfig -> :func:`run_flow`."""
    from search.commands import config_from_args, option_warnings
    from search.runtime.signals import SearchInterrupted

    args = resolve_options(args)
    # Checked again in run_flow against the resolved data folder; both before the search.
    check_run_options(top_k=args.top_k, top_n=args.top_n,
                      target_sensitivity=args.target_sensitivity,
                      test_dir=None if args.skip_export else args.test_dir,
                      run_dir=args.run_dir, data_dir=args.data, ensemble=args.ensemble,
                      max_members=args.ensemble_max_members)
    if args.skip_export is False and args.model != "both":
        print(f"note: --model {args.model}: the comparison report shows one model only.",
              file=sys.stderr)
    config = config_from_args(args, argv)
    for line in option_warnings(args):
        print(line, file=sys.stderr, flush=True)
    try:
        out = run_flow(config, top_k=args.top_k, top_n=args.top_n,
                       target_sensitivity=args.target_sensitivity, test_dir=args.test_dir,
                       skip_export=args.skip_export, ensemble=args.ensemble,
                       max_members=args.ensemble_max_members)
    except SearchInterrupted as exc:
        return exc.exit_code
    print(summary_text(out))
    return 0
