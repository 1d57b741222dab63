"""Replays the in-fold pruning rule (search.pruning) on recorded learning curves, to choose its
grace period and margin from a measurement instead of a guess.

Input: real curves, either run folders of a search run without pruning (``trial_*/fold<k>.json``
histories, the fold's objective from ``best``) or the ``priors.json`` of
``benchmarks/priors_sweep.py`` (``val_auc_curve`` and ``val_auc_geometric`` per configuration).
Each configuration's curve is the clean ``val_auc`` per epoch (what the rule sees); its worth
is the objective its fold finished with (``val_auc_geometric`` by default).

For each rule setting (grace, margin) and each of ``--orders`` random arrival orders, the
configurations arrive one by one, as trials of a search do; each is judged at the rungs against
the curves of those before it (pruned ones truncated where they stopped, exactly as the search
keeps them). Reported per setting:

* ``epochs_saved``: the share of all training epochs the rule did not spend;
* ``winners_lost``: how often one of the ``--top`` configurations by final objective was pruned
  (the cost that matters: a slow learner that would have won);
* ``pruned``: the share of configurations stopped.

    python benchmarks/pruning_replay.py runs/priors/priors.json runs/curves/cnn

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

from search import pruning  # noqa: E402  (after the path insert)


def load_curves(paths: list[Path], objective: str, family: str | None = None
                ) -> list[dict[str, Any]]:
    """``[{"name", "curve": [val_auc per epoch], "worth": final objective}]`` from the inputs
    (``family``: only that family's configurations of a ``priors.json``)."""
    out = []
    for path in paths:
        path = Path(path)
        if path.is_file():
            results = json.loads(path.read_text()).get("results", {})
            for name, r in results.items():
                if family and r.get("family") != family:
                    continue
                if r.get("val_auc_curve") and r.get(objective) is not None:
                    out.append({"name": name, "curve": r["val_auc_curve"],
                                "worth": r[objective]})
            continue
        for fold_file in sorted(path.glob("trial_*/fold*.json")):
            rec = json.loads(fold_file.read_text())
            curve = (rec.get("history") or {}).get("val_auc")
            worth = (rec.get("best") or {}).get(objective)
            if curve and worth is not None and not rec.get("initial_epoch"):
                out.append({"name": f"{fold_file.parent.name}/{fold_file.stem}",
                            "curve": curve, "worth": worth})
    return out


def replay(configs: list[dict[str, Any]], order: list[int], *, grace: int, margin: float,
           max_epochs: int) -> dict[str, Any]:
    """One arrival order under one rule setting: which configurations stop, and where."""
    peers: list[dict[str, Any]] = []
    stopped_at: dict[int, int] = {}
    spent = full = 0
    for i in order:
        curve = configs[i]["curve"][:max_epochs]
        best = pruning.running_best(curve, "max")
        stop = None
        for rung in pruning.rungs(max_epochs, grace=grace):
            if rung > len(curve) - 1:
                break  # the curve ended (early stopping) before this rung: it finished
            if pruning.verdict(best[rung - 1], rung, 0, peers, metric="val_auc",
                               direction="max", margin=margin):
                stop = rung
                break
        full += len(curve)
        spent += stop or len(curve)
        if stop:
            stopped_at[i] = stop
            peers.append({"best": best[:stop], "finished": False})
        else:
            peers.append({"best": best, "finished": True})
    return {"stopped": stopped_at, "spent": spent, "full": full}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("inputs", nargs="+", type=Path)
    p.add_argument("--objective", default="val_auc_geometric")
    p.add_argument("--family", default=None, help="cnn or ann: filter a priors.json")
    p.add_argument("--max-epochs", type=int, default=30)
    p.add_argument("--top", type=int, default=3, help="configurations that count as winners")
    p.add_argument("--orders", type=int, default=200)
    p.add_argument("--graces", default="1,2,3")
    p.add_argument("--margins", default="0,0.02,0.05,0.1")
    args = p.parse_args(argv)
    configs = load_curves(args.inputs, args.objective, args.family)
    if len(configs) < pruning.MIN_PEERS + 1:
        print(f"only {len(configs)} curves in {', '.join(map(str, args.inputs))}; the rule "
              f"needs {pruning.MIN_PEERS} peers before it judges anything", file=sys.stderr)
        return 2
    worth = np.array([c["worth"] for c in configs])
    winners = set(np.argsort(-worth)[:args.top].tolist())
    rng = np.random.default_rng(0)
    orders = [rng.permutation(len(configs)).tolist() for _ in range(args.orders)]
    print(f"{len(configs)} curves, top {args.top} by {args.objective}: "
          + ", ".join(f"{configs[w]['name']} ({configs[w]['worth']:.4f})" for w in winners))
    print(f"MIN_PEERS {pruning.MIN_PEERS}, boundary rank ceil(n/3), {args.orders} random "
          f"arrival orders, rungs up to {args.max_epochs} epochs\n")
    print("| grace | margin | epochs saved | configurations pruned | orders losing a winner |")
    print("| --- | --- | --- | --- | --- |")
    for grace in (int(g) for g in args.graces.split(",")):
        for margin in (float(m) for m in args.margins.split(",")):
            saved, pruned, lost = [], [], 0
            for order in orders:
                r = replay(configs, order, grace=grace, margin=margin,
                           max_epochs=args.max_epochs)
                saved.append(1 - r["spent"] / r["full"])
                pruned.append(len(r["stopped"]) / len(configs))
                lost += bool(winners & set(r["stopped"]))
            print(f"| {grace} | {margin:g} | {np.mean(saved):.1%} | {np.mean(pruned):.1%} | "
                  f"{lost / len(orders):.1%} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
