"""Records per-epoch probe curves on the real data, for replaying the successive-halving ladder.

The ladder (``search/schedule/ladder.py``) ranks configurations at early rungs by the search
objective
measured there (the geometric probe on the fold's validation images). Whether that early rank
loses the configurations that end best, slow starters above all (batch norm, strong
augmentation), can only be measured on real curves of that objective: this script records them,
and ``benchmarks/ladder_replay.py`` replays the ladder on them.

Configurations: the reference run's CNN default (the notes' basic model with augmentation at
strength 1.0), the named slow starters (batch norm before / after the activation, at Keras'
batch-norm momentum 0.99 and at 0.9; the notebook's wide augmentation ranges), and
``--draws`` random draws from the reference space (``benchmarks/reference_space.toml``,
over-budget draws refused as the search refuses them). Each trains ``--epochs`` epochs on fold
``--fold`` of the same data, split and folds as ``benchmarks/priors_sweep.py`` (carved
patient-grouped test split, patient-grouped folds of the rest, seed 42), with no early stopping,
exactly as a search fold trains otherwise (``search.fit.fold_fit.fit_fold``). After every epoch the
current weights are scored: clean AUC and every probe (``search.fit.probes.probe_scores``).

    python benchmarks/ladder_curves.py --out runs/ladder_curves          # resumable
    python benchmarks/ladder_curves.py --draws 4 --epochs 6 --only cnn_base

Writes ``OUT/curves.json`` after every configuration (a configuration already in it is not
trained again). Quality only: the figures do not depend on the machine's load; the seconds per
epoch recorded beside them do, and are only used to price the replay's budget.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.generalisation import _hp, _machine  # noqa: E402  (after the path insert)
from benchmarks.priors_sweep import load_fold  # noqa: E402

CNN_BASE: dict[str, Any] = {"augmentation": True, "augmentation_strength": 1.0}
NAMED: dict[str, dict[str, Any]] = {
    "cnn_base": {},
    "cnn_bn_after_m0.99": {"conv_batch_norm": "after_activation", "_bn_momentum": 0.99},
    "cnn_bn_after_m0.9": {"conv_batch_norm": "after_activation", "_bn_momentum": 0.9},
    "cnn_bn_before_m0.99": {"conv_batch_norm": "before_activation", "_bn_momentum": 0.99},
    "cnn_bn_before_m0.9": {"conv_batch_norm": "before_activation", "_bn_momentum": 0.9},
    "cnn_aug_wide": {"augmentation_ranges": "wide"},
}


def random_draws(n: int, seed: int, shape: tuple[int, ...], counts: list[int],
                 space_file: str) -> dict[str, dict[str, Any]]:
    """``n`` random configurations of the reference space, as the random tuner draws them."""
    import spaces
    from search.tuners.oracles import make_oracle

    hm = spaces.CNNHyperModel(shape, class_counts=counts, space=spaces.load_space(space_file))
    oracle = make_oracle("random", objective="val_auc_geometric", direction="max",
                         max_trials=n + 1, max_epochs=1, seed=seed, family="cnn")
    hp = oracle.get_space()
    hm.declare_hyperparameters(hp)
    oracle.update_space(hp)

    def refusal(values: dict[str, Any]) -> str | None:
        h = oracle.hyperparameters.copy()
        h.values.update(values)
        return hm.refusal(h)

    oracle.refusal = refusal
    oracle.trials = {"x": None}  # not the first trial: no defaults, every draw is random
    out = {}
    for i in range(n):
        values = oracle._random_values()  # noqa: SLF001 - a benchmark draws as the tuner does
        if values is None:
            break
        out[f"cnn_draw{i + 1}"] = {k: v for k, v in values.items() if not k.startswith("tuner/")}
    return out


def probe_callback(d: dict[str, Any]):
    """A Keras callback scoring the current weights with every probe after each epoch."""
    import keras

    from search.fit.probes import probe_scores

    class _Probes(keras.callbacks.Callback):
        def __init__(self) -> None:
            super().__init__()
            self.rows: list[dict[str, float]] = []
            self.seconds: list[float] = []
            self._t0 = 0.0

        def on_epoch_begin(self, epoch, logs=None):
            self._t0 = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            self.seconds.append(time.perf_counter() - self._t0)  # the fit's epoch, not the probe
            scores = probe_scores(self.model, d["x_va"], d["y_va"], d["shifted"], d["batches_va"])
            self.rows.append({k: round(float(v), 5) for k, v in scores.items()})

    return _Probes()


def run_one(name: str, values: dict[str, Any], d: dict[str, Any], args: argparse.Namespace,
            scratch: Path) -> dict[str, Any]:
    """Trains one configuration for ``--epochs`` epochs and records its per-epoch probes."""
    import spaces
    import spaces.common
    from search.fit.fold_fit import fit_fold

    values = dict(values)
    momentum = values.pop("_bn_momentum", spaces.common.BN_MOMENTUM)
    saved = spaces.common.BN_MOMENTUM
    spaces.common.BN_MOMENTUM = momentum
    try:
        hm = spaces.CNNHyperModel(tuple(d["x_tr"].shape[1:]), class_counts=d["counts"])
        trial_dir = scratch / name
        trial_dir.mkdir(parents=True, exist_ok=True)
        cb = probe_callback(d)
        fit_fold(hypermodel=hm, hp=_hp(values), trial_id=name, trial_dir=trial_dir,
                 family_dir=scratch, fold=args.fold, x_tr=d["x_tr"], y_tr=d["y_tr"],
                 x_va=d["x_va"], y_va=d["y_va"], epochs=args.epochs, initial_epoch=0,
                 carry_from=None, objective="val_auc", direction="max",
                 patience=args.epochs, seed=args.seed, extra_callbacks=[cb], probe=None)
    finally:
        spaces.common.BN_MOMENTUM = saved
        shutil.rmtree(scratch / name, ignore_errors=True)
    curves = {k: [r.get(k) for r in cb.rows] for k in cb.rows[0]}
    return {"hyperparameters": values, "bn_momentum": momentum, "curves": curves,
            "seconds_per_epoch": [round(s, 2) for s in cb.seconds]}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", default="../shared/data/chest_xray")
    p.add_argument("--image-size", type=int, default=64)
    p.add_argument("--folds", type=int, default=3)
    p.add_argument("--fold", type=int, default=0)
    p.add_argument("--epochs", type=int, default=12)
    p.add_argument("--draws", type=int, default=8)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--space", default="benchmarks/reference_space.toml")
    p.add_argument("--only", action="append", default=None, metavar="NAME")
    p.add_argument("--out", default="runs/ladder_curves")
    args = p.parse_args(argv)
    if not Path(args.data).is_dir():
        print(f"error: data folder {args.data} not found; pass --data /path/to/chest_xray",
              file=sys.stderr)
        return 2
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "curves.json"
    report = json.loads(path.read_text()) if path.exists() else {"results": {}}
    report.update({"machine": _machine(), "data": args.data, "image_size": args.image_size,
                   "fold": args.fold, "epochs": args.epochs, "seed": args.seed})
    d = load_fold(args.data, args.image_size, args.folds, args.fold, args.seed)
    configs = {k: {**CNN_BASE, **v} for k, v in NAMED.items()}
    configs.update(random_draws(args.draws, args.seed, tuple(d["x_tr"].shape[1:]),
                                d["counts"], args.space))
    if args.only:
        configs = {k: v for k, v in configs.items() if k in args.only}
    scratch = out / "scratch"
    for i, (name, values) in enumerate(configs.items(), 1):
        if name in report["results"]:
            continue
        print(f"[{i}/{len(configs)}] {name} {values} (load {os.getloadavg()[0]:.1f})",
              flush=True)
        report["results"][name] = run_one(name, values, d, args, scratch)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(report, indent=1))
        os.replace(tmp, path)
        geo = report["results"][name]["curves"]["val_auc_geometric"]
        print(f"    geometric per epoch: {geo}", flush=True)
    shutil.rmtree(scratch, ignore_errors=True)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
