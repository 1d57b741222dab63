"""Search efficiency at the reference settings: what a fixed wall budget judges and finishes.

For each variant, one CNN search at the reference run's settings (``benchmarks/reference_run.sh``:
the shared training folder, 64 px grayscale, 3 patient-grouped folds, up to ``--max-epochs`` 30
epochs with patience 6, ``benchmarks/reference_space.toml``, seed 42, ``--time-budget
--minutes``), one after another, each as its own ``run_search.py search`` process. Variants:

- ``before``: the rules before the ladder (racing after a fold, the margin rule inside a fold,
  the cost stops), run from a git worktree of ``--before-commit`` (created under ``OUT``);
- ``ladder_random``: today's code, random search on the ladder;
- ``ladder_tpe``: today's code, TPE on the ladder;
- ``ladder_random_b2``: random search, two ladder brackets.

Reported per variant, from the run folder's ``cv.json`` files only:

- ``judged``: configurations judged on quality (completed, or stopped by a quality rule: the
  ladder, racing, a rung; or suspended at a ladder rung that at least 3 configurations
  reached, where it did not rank in their top third); cost stops, budget cuts and
  configurations still waiting for peers at a rung do not count;
- ``suspended``: configurations left waiting at a ladder rung when the budget ended;
- ``finished``: configurations that completed every fold at full length;
- ``low_share``: the share of the trials' wall time spent on configurations that ended below
  ``--low`` (0.9) of the objective (their last score: mean, rung or partial fold);
- the winner's CV objective (``val_auc_geometric``) and its fold spread (std over folds), and
  the space default's (trial 0000) for comparison.

Whether the machine was quiet is recorded per variant (``benchmarks/quiet.py``: the load
average before it and after a cool-down, and the CPU other processes used meanwhile), and a
loaded variant is flagged: figures taken beside other work are not figures (nothing else may
run).
All numbers are cross-validation on one folder: in-distribution.

    python benchmarks/search_efficiency.py --out runs/search_efficiency          # 3 x 30 min
    python benchmarks/search_efficiency.py --minutes 1 --fraction 0.1 --max-epochs 4 \\
        --variants ladder_random --out runs/se_dry                                # a dry run

Writes ``OUT/search_efficiency.json`` after every variant (a finished variant is not run again)
and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.quiet import QuietRecord  # noqa: E402  (after the path insert)
VARIANTS = ("before", "ladder_random", "ladder_tpe", "ladder_random_b2")
DEFAULT_VARIANTS = VARIANTS[:3]  # the three; two brackets on request


def subsample(src: Path, dest: Path, fraction: float) -> Path:
    """``src`` itself for a fraction of 1; else a folder of symlinks to the patients of
    ``src/train`` whose id hashes under ``fraction`` (whole patients, deterministic)."""
    from data_pipeline.groups import patient_id

    if fraction >= 1:
        return src
    if (dest / "train").is_dir():
        return dest
    for cls_dir in sorted(p for p in (src / "train").iterdir() if p.is_dir()):
        out = dest / "train" / cls_dir.name
        out.mkdir(parents=True, exist_ok=True)
        for f in sorted(cls_dir.iterdir()):
            pid = patient_id(f.name) or f.name
            h = int(hashlib.sha256(f"{cls_dir.name}/{pid}".encode()).hexdigest()[:8], 16)
            if h / 0xFFFFFFFF < fraction:
                os.symlink(f.resolve(), out / f.name)
    return dest


def code_dir(name: str, out: Path, before_commit: str) -> Path:
    """Where the variant's code lives: this checkout, or a worktree of ``before_commit``."""
    if name != "before":
        return ROOT
    tree = out / f"code_{before_commit[:10]}"
    if not tree.is_dir():
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(tree),
                        before_commit], check=True, capture_output=True)
    return tree


def command(name: str, data: Path, run_dir: Path, args: argparse.Namespace) -> list[str]:
    """The ``search`` command line of a variant."""
    tuner = "tpe" if "tpe" in name else "random"
    cmd = [sys.executable, "run_search.py", "search", "--data", str(data), "--model", "cnn",
           "--image-size", "64", "--color-mode", "grayscale", "--tuner", tuner, "--folds", "3",
           "--max-trials", "500", "--max-epochs", str(args.max_epochs),
           "--patience", str(args.patience), "--time-budget", str(args.minutes),
           "--space", str(ROOT / args.space), "--seed", str(args.seed), "--run-dir",
           str(run_dir), "--overwrite", "--quiet", "--no-tensorboard"]
    if name.endswith("_b2"):
        cmd += ["--ladder-brackets", "2"]
    if args.first_rung and name != "before":
        cmd += ["--first-rung", str(args.first_rung)]
    return cmd


def last_score(cv: dict[str, Any], objective: str) -> float | None:
    """The trial's last score: its fold mean, else the partial fold's (a rung or a stop)."""
    value = (cv.get("mean") or {}).get(objective)
    if value is None:
        value = ((cv.get("stopped_in_fold") or {}).get("best") or {}).get(objective)
    return value


def rung_fields(cvs: list[dict[str, Any]]) -> dict[tuple[int, int], int]:
    """``{(bracket, rung): configurations that reached it}`` over a run's records."""
    out: dict[tuple[int, int], int] = {}
    for cv in cvs:
        ladder = cv.get("ladder") or {}
        for entry in ladder.get("rungs") or []:
            key = (int(ladder.get("bracket", 0)), int(entry["rung"]))
            out[key] = out.get(key, 0) + 1
    return out


def judged_on_quality(cv: dict[str, Any],
                      fields: dict[tuple[int, int], int] | None = None) -> bool:
    """Completed, or stopped by a quality rule (not by cost, not cut by the budget), or left
    suspended at a rung where at least 3 configurations ranked it out of their top third."""
    if cv.get("status") == "COMPLETED":
        return True
    if cv.get("status") == "SUSPENDED":
        ladder = cv.get("ladder") or {}
        waiting = [e for e in ladder.get("rungs") or [] if e.get("suspended")
                   and not e.get("promoted")]
        key = (int(ladder.get("bracket", 0)), int(waiting[-1]["rung"])) if waiting else None
        return key is not None and (fields or {}).get(key, 0) >= 3
    if cv.get("status") != "PRUNED" or cv.get("censored"):
        return False
    return (cv.get("stopped_in_fold") or {}).get("rule") != "cost"


def summarise(run_dir: Path, *, max_epochs: int, n_folds: int, low: float) -> dict[str, Any]:
    """The variant's figures from its ``cnn/trial_*/cv.json`` files."""
    cvs = [json.loads(p.read_text()) for p in sorted((run_dir / "cnn").glob("trial_*/cv.json"))]
    if not cvs:
        return {"trials": 0}
    objective = cvs[0]["objective"]
    total = sum(cv.get("duration_s") or 0.0 for cv in cvs) or 1.0
    low_s = sum(cv.get("duration_s") or 0.0 for cv in cvs
                if (s := last_score(cv, objective)) is not None and s < low)
    completed = [cv for cv in cvs if cv.get("status") == "COMPLETED"]
    finished = [cv for cv in completed if len(cv.get("folds") or []) == n_folds]
    winner = max(completed, key=lambda cv: cv["mean"][objective], default=None)
    default = next((cv for cv in cvs if cv["trial_id"] == "0000"), None)

    def spread(cv):
        return None if cv is None else (cv.get("std") or {}).get(objective)

    fields = rung_fields(cvs)
    return {"objective": objective, "trials": len(cvs),
            "judged": sum(judged_on_quality(cv, fields) for cv in cvs),
            "suspended": sum(cv.get("status") == "SUSPENDED" for cv in cvs),
            "finished": len(finished),
            "stopped_for_cost": sum(cv.get("status") == "PRUNED" and not judged_on_quality(cv)
                                    for cv in cvs),
            "cut_by_budget": sum(cv.get("status") == "RUNNING" for cv in cvs),
            "low_share": round(low_s / total, 3),
            "winner": winner and winner["trial_id"],
            "winner_score": winner and winner["mean"][objective],
            "winner_spread": spread(winner),
            "default_score": default and (default.get("mean") or {}).get(objective)
            if default and default.get("status") == "COMPLETED" else None,
            "default_spread": spread(default)
            if default and default.get("status") == "COMPLETED" else None,
            "max_epochs": max_epochs}


def markdown(results: dict[str, Any]) -> str:
    """The table RESULTS.md shows."""
    def f(v, fmt="{:.4f}"):
        return "-" if v is None else fmt.format(v)

    lines = ["| variant | trials | judged on quality | finished | suspended at the end | "
             "stopped for cost | budget on < 0.9 | winner (std over folds) | default (std) | "
             "load start / end, other cores |",
             "|" + " --- |" * 10]
    for name in VARIANTS:
        r = results.get(name)
        if not r or not r.get("trials"):
            continue
        flag = " **loaded**" if r.get("loaded") else ""
        lines.append(
            f"| {name} | {r['trials']} | {r['judged']} | {r['finished']} | "
            f"{r.get('suspended', '-')} | {r['stopped_for_cost']} | {r['low_share']:.0%} | {f(r['winner_score'])} "
            f"({f(r['winner_spread'])}) | {f(r['default_score'])} ({f(r['default_spread'])}) | "
            f"{r['load_start']:.2f} / {r['load_end']:.2f}, {r.get('other_cores', '-')}{flag} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "chest_xray"))
    p.add_argument("--fraction", type=float, default=1.0)
    p.add_argument("--minutes", type=float, default=30.0, help="wall budget per variant")
    p.add_argument("--variants", default=",".join(DEFAULT_VARIANTS),
                   help=f"comma-separated, of {', '.join(VARIANTS)}")
    p.add_argument("--max-epochs", type=int, default=30)
    p.add_argument("--patience", type=int, default=6)
    p.add_argument("--first-rung", type=int, default=None)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--space", default="benchmarks/reference_space.toml")
    p.add_argument("--before-commit", default="a6c392c",
                   help="the commit whose rules are 'before' (the last one before the ladder)")
    p.add_argument("--low", type=float, default=0.9)
    p.add_argument("--out", default="runs/search_efficiency")
    args = p.parse_args(argv)
    if not Path(args.data).is_dir():
        print(f"error: data folder {args.data} not found; pass --data", file=sys.stderr)
        return 2
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    data = subsample(Path(args.data), out / "data", args.fraction)
    path = out / "search_efficiency.json"
    results = json.loads(path.read_text()) if path.exists() else {}
    results["_setup"] = vars(args)
    for name in args.variants.split(","):
        if name in results:
            continue
        run_dir = out / name
        cwd = code_dir(name, out, args.before_commit)
        print(f"== {name}: {args.minutes:g} min, load {os.getloadavg()[0]:.2f}", flush=True)
        t0 = time.monotonic()
        with QuietRecord() as quiet:
            proc = subprocess.run(command(name, data, run_dir, args), cwd=cwd,
                                  env={**os.environ, "PYTHONPATH": str(cwd)})
            wall = time.monotonic() - t0
        print("   " + quiet.line(), flush=True)
        if proc.returncode not in (0,):
            print(f"   {name}: search exited {proc.returncode}", file=sys.stderr)
        r = summarise(run_dir, max_epochs=args.max_epochs, n_folds=3, low=args.low)
        r.update(wall_s=round(wall, 1), exit_code=proc.returncode, **quiet.as_dict())
        results[name] = r
        path.write_text(json.dumps(results, indent=2) + "\n")
        print(markdown(results), flush=True)
    print(markdown(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
