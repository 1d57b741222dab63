"""Replays the successive-halving ladder (search/schedule/ladder.py) on recorded per-epoch probe
curves, to choose its first rung and brackets from a measurement: what does it save, and which of the
configurations that end best does it lose (slow starters above all)?

Input: ``curves.json`` of ``benchmarks/ladder_curves.py`` (per configuration, the objective -
``val_auc_geometric`` by default - and the clean ``val_auc`` after every epoch of one fold).
A configuration's value at an in-fold rung of epoch ``e`` is its objective after ``e`` epochs
(what the search measures there); at the end of the fold, the objective at the epoch early
stopping would restore (best clean ``val_auc`` within ``--patience``, capped at the recorded
epochs), which is also its **worth** (what the search would finally rank it by).

For each setting (first rung, brackets) and each of ``--orders`` random arrival orders, the
configurations arrive one by one, as a search's trials do, and climb the ladder exactly as
``search.schedule.ladder.verdict`` decides against those before them (a pruned configuration leaves
its values at the rungs it reached). Reported per setting:

* ``epochs_saved``: the share of the fold-0 epochs the ladder did not spend;
* ``winner_lost``: how often the best configuration by worth was pruned;
* ``top3_lost``: how often at least one of the ``--top`` best was pruned;
* ``slow_lost``: how often each named slow starter (``--slow NAME``, default the batch-norm
  configurations) was pruned, when it is among the top half by worth.

    python benchmarks/ladder_replay.py runs/ladder_curves/curves.json
    python benchmarks/ladder_replay.py runs/ladder_curves/curves.json \
        --drop cnn_bn_after_m0.99 --drop cnn_bn_before_m0.99   # only what the space builds

Prints a Markdown table; nothing is written. Machine independent (no training).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from search.schedule import ladder


def restored_epoch(clean: list[float], patience: int) -> int:
    """0-based epoch early stopping on ``clean`` (max) with ``patience`` restores."""
    best, best_i, waited = -np.inf, 0, 0
    for i, v in enumerate(clean):
        if v > best:
            best, best_i, waited = v, i, 0
        else:
            waited += 1
            if waited >= patience:
                break
    return best_i


def load(path: Path, objective: str, patience: int) -> list[dict[str, Any]]:
    """``[{"name", "curve": objective per epoch, "end": value at the restored epoch}]``."""
    out = []
    for name, r in json.loads(Path(path).read_text())["results"].items():
        curve = [float("nan") if v is None else float(v) for v in r["curves"][objective]]
        clean = [float(v) for v in r["curves"]["val_auc"]]
        out.append({"name": name, "curve": curve,
                    "end": curve[restored_epoch(clean, patience)], "epochs": len(curve)})
    return out


def climb(configs: list[dict[str, Any]], order: list[int], *, first: int, brackets: int,
          max_epochs: int) -> tuple[set[str], int]:
    """Arrivals in ``order``; returns (names pruned, fold-0 epochs spent)."""
    rungs = ladder.rungs(max_epochs, first=first)
    seen: dict[tuple[int, int], list[float]] = {}  # (bracket, rung) -> values
    pruned, spent = set(), 0
    for n, i in enumerate(order):
        c = configs[i]
        bracket = n % brackets
        stop_at = c["epochs"]
        for rung in rungs:
            value = c["end"] if rung.epoch is None else c["curve"][min(rung.epoch, c["epochs"]) - 1]
            field = seen.setdefault((bracket, rung.index), [])
            keep = rung.index < bracket or ladder.verdict(value, field, "max").promoted
            field.append(value)
            if not keep:
                pruned.add(c["name"])
                stop_at = rung.epoch or c["epochs"]
                break
        spent += stop_at
    return pruned, spent


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("curves", type=Path)
    p.add_argument("--objective", default="val_auc_geometric")
    p.add_argument("--patience", type=int, default=6)
    p.add_argument("--top", type=int, default=3)
    p.add_argument("--orders", type=int, default=500)
    p.add_argument("--first-rungs", default="1,2,3")
    p.add_argument("--brackets", default="1,2")
    p.add_argument("--slow", action="append", default=None, metavar="NAME")
    p.add_argument("--drop", action="append", default=[], metavar="NAME",
                   help="leave a recorded configuration out (e.g. a prior no longer shipped)")
    args = p.parse_args(argv)
    configs = [c for c in load(args.curves, args.objective, args.patience)
               if c["name"] not in args.drop]
    if len(configs) < 4:
        print(f"error: {len(configs)} configurations in {args.curves}; the replay needs at "
              "least 4 (record more with benchmarks/ladder_curves.py)", file=sys.stderr)
        return 2
    max_epochs = min(c["epochs"] for c in configs)
    by_worth = sorted(configs, key=lambda c: -c["end"])
    best, top = by_worth[0]["name"], {c["name"] for c in by_worth[:args.top]}
    upper = {c["name"] for c in by_worth[:max(1, len(by_worth) // 2)]}
    slow = [n for n in (args.slow or [c["name"] for c in configs if "_bn_" in c["name"]])
            if n in upper]
    rng = np.random.default_rng(0)
    orders = [list(rng.permutation(len(configs))) for _ in range(args.orders)]
    total = sum(c["epochs"] for c in configs)
    print(f"{len(configs)} configurations, {max_epochs} epochs recorded, objective "
          f"{args.objective}; best by worth: {best}; top {args.top}: {', '.join(sorted(top))}; "
          f"slow starters in the top half: {', '.join(slow) or 'none'}; {args.orders} orders\n")
    head = ["first rung", "brackets", "epochs saved", "winner lost", f"top-{args.top} lost",
            *(f"{n} lost" for n in slow)]
    print("| " + " | ".join(head) + " |")
    print("|" + " --- |" * len(head))
    for first in (int(x) for x in args.first_rungs.split(",")):
        for brackets in (int(x) for x in args.brackets.split(",")):
            saved, win, top_lost, slow_lost = [], 0, 0, dict.fromkeys(slow, 0)
            for order in orders:
                pruned, spent = climb(configs, order, first=first, brackets=brackets,
                                      max_epochs=max_epochs)
                saved.append(1 - spent / total)
                win += best in pruned
                top_lost += bool(top & pruned)
                for n in slow:
                    slow_lost[n] += n in pruned
            k = len(orders)
            cells = [str(first), str(brackets), f"{np.mean(saved):.0%}", f"{win / k:.0%}",
                     f"{top_lost / k:.0%}", *(f"{slow_lost[n] / k:.0%}" for n in slow)]
            print("| " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
