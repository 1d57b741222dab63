#!/usr/bin/env python3
"""Random vs Bayesian vs TPE on the same budget: best score so far after each trial.

The tuners are the service's own oracles (``search.tuners.oracles.make_oracle``: the trial cap, the
defaults first, the real over-budget refusal of the CNN space at 64 px), proposing over the
real shipped CNN space (``spaces/default_space.toml``: 32 tunable dimensions, 11 of them
conditional). What they are scored on is **not** training: it is a constructed response surface
(:func:`surrogate_auc`) so that every tuner can be run many times, with several seeds, in
minutes on a CPU. Its shape encodes what this project has seen or assumes, not measurements:

- the learning rate has an optimum per optimiser (Adam/RMSprop near 1e-3, SGD near 1e-2) and
  rates far below it learn little within the epoch budget (issue 22: a third of log-uniform
  draws from 1e-5 lie below 1e-4);
- SGD needs momentum; an exponential schedule that decays tenfold in a few epochs stalls;
- depth helps up to 3-4 conv blocks at 64 px; batch norm helps a little; moderate dropout and
  moderate augmentation help a little, heavy ones hurt; global pooling and equalisation are
  small effects;
- Adam/RMSprop above 5e-3 without batch norm diverge half the time (the trial fails);
- each score carries a fixed pseudo-random "fold noise" of 0.005.

It therefore compares how the tuners *search* a conditional space of the real shape; which
model is best on the X-rays is what ``benchmarks/search_efficiency.py`` measures with training.

Usage:
  .venv/bin/python benchmarks/tuner_comparison.py [--trials 30] [--seeds 5]
      [--tuners random bayesian tpe] [--json out.json]
  # the tuners in separate processes, then one table from their files:
  .venv/bin/python benchmarks/tuner_comparison.py --load a.json b.json
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import platform
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
# One BLAS thread: the seconds per proposal then compare the tuners' own work, and the Gaussian
# process's linear algebra does not spin threads against other jobs on a shared 2-core machine
# (with the default threads it took minutes per proposal there under load).
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")
REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

# A trial at or below this score is a configuration that "did not learn" (the racing target).
POOR = 0.9


def _noise(values: dict, seed: int, scale: float = 0.005) -> float:
    """A fixed Gaussian draw per (configuration, seed) (Box-Muller on two hashed uniforms)."""
    key = json.dumps(values, sort_keys=True, default=str) + f":{seed}"
    digest = hashlib.sha256(key.encode()).hexdigest()
    u1, u2 = (int(digest[i:i + 8], 16) / 2**32 for i in (0, 8))
    return scale * math.sqrt(-2 * math.log(max(u1, 1e-12))) * math.cos(2 * math.pi * u2)


def surrogate_auc(v: dict, seed: int) -> float | None:
    """The constructed score of a CNN configuration (see the module docstring); None = fails.

    Args:
        v: Active hyperparameter values of the shipped CNN space.
        seed: The run's seed (the fixed noise and the divergence draw depend on it).
    """
    opt, lr = v["optimizer"], v["learning_rate"]
    best_lr = 1e-2 if opt == "sgd" else 1e-3
    penalty = 0.5 * (math.log10(lr) - math.log10(best_lr)) ** 2
    if opt == "sgd":
        penalty += 4.0 * max(0.0, 0.9 - v["momentum"]) ** 2
    if v["lr_schedule"] == "exponential":
        penalty += 0.6 * max(0.0, (15 - v["lr_decay_epochs"]) / 10)
    penalty += 0.03 * (v["conv_blocks"] - 3.5) ** 2
    penalty += 0.03 * abs(math.log2(v["conv_filters"] / 32))
    bn = v["conv_batch_norm"] != "none"
    penalty += 0.0 if bn else 0.04
    # Dropout and augmentation: a small gain at moderate rates, a loss at heavy ones.
    penalty += (0.8 * (v["conv_dropout_rate"] - 0.2) ** 2 if v["conv_dropout"] != "none"
                else 0.015)
    penalty += (0.8 * (v["dense_dropout_rate"] - 0.3) ** 2
                if v["dense_layers"] >= 1 and v["dense_dropout"] != "none" else 0.01)
    penalty += 0.5 * (v["augmentation_strength"] - 0.3) ** 2 if v["augmentation"] else 0.015
    penalty += 0.0 if v["head"] == "global_average" else 0.01
    penalty += 0.0 if v["intensity_norm"] == "equalize" else 0.005
    penalty += 0.02 * v["border_crop"] / 0.15
    if opt != "sgd" and lr > 5e-3 and not bn:
        u = int(hashlib.sha256(f"{sorted(v.items())}:{seed}:div".encode()).hexdigest()[:8], 16)
        if u % 2:
            return None
    # 0.97 at the optimum (penalty 0), about 0.90 for the space's defaults, 0.5 (chance) for a
    # configuration that learns nothing.
    auc = 0.5 + 0.47 * math.exp(-penalty) + _noise(v, seed)
    return float(min(auc, 0.999))


def run_tuner(tuner: str, trials: int, seed: int, hypermodel, hyperparameters) -> dict:
    """Runs one oracle for ``trials`` trials; returns scores in order and timings."""
    from search.tuners.oracles import make_oracle

    oracle = make_oracle(tuner, objective="val_auc", direction="max", max_trials=trials,
                         max_epochs=30, seed=seed, family="cnn")
    oracle.hyperparameters = hyperparameters.copy()
    oracle._display.verbose = 0
    with tempfile.TemporaryDirectory(prefix=f"tuners-{tuner}-") as tmp:
        oracle._set_project_dir(tmp, "p")

        def refusal(values: dict) -> str | None:
            hp = oracle.hyperparameters.copy()
            hp.values.update(values)
            return hypermodel.refusal(hp)
        oracle.refusal = refusal
        scores, propose_s = [], []
        while True:
            t0 = time.perf_counter()
            trial = oracle.create_trial("tuner0")
            propose_s.append(time.perf_counter() - t0)
            if trial.status == "STOPPED":
                propose_s.pop()
                break
            values = {k: v for k, v in trial.hyperparameters.values.items()
                      if trial.hyperparameters.is_active(k)}
            score = surrogate_auc(values, seed)
            if score is None:
                trial.status = "FAILED"
            else:
                oracle.update_trial(trial.trial_id, {"val_auc": score})
                trial.status = "COMPLETED"
            oracle.end_trial(trial)
            scores.append(score)
        sources = getattr(oracle, "proposals", {})
    return {"scores": scores, "propose_s": propose_s,
            "model_proposals": sum(s == "model" for s in sources.values())}


def best_so_far(scores: list[float | None]) -> list[float]:
    out, best = [], 0.0
    for s in scores:
        best = max(best, s if s is not None else 0.0)
        out.append(best)
    return out


def print_table(results: dict[str, list[dict]], trials: int, header: list[str]) -> None:
    """The best-so-far table (mean over seeds, per trial) and the per-tuner summary."""
    tuners = list(results)
    for line in header:
        print(line)
    curves = {t: [best_so_far(r["scores"]) for r in rs] for t, rs in results.items()}
    print("| trial | " + " | ".join(f"{t}" for t in tuners) + " |")
    print("| ---: |" + " ---: |" * len(tuners))
    for i in range(trials):
        row = [statistics.mean(c[i] for c in curves[t] if len(c) > i) for t in tuners]
        print(f"| {i + 1} | " + " | ".join(f"{x:.4f}" for x in row) + " |")
    print()
    print(f"| tuner | seeds | final best, mean +- sd | trials <= {POOR} or failed | "
          "model proposals per run | seconds per proposal |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for t in tuners:
        finals = [c[-1] for c in curves[t]]
        every = [s for r in results[t] for s in r["scores"]]
        poor = sum(s is None or s <= POOR for s in every) / max(1, len(every))
        prop = statistics.mean(x for r in results[t] for x in r["propose_s"])
        models = statistics.mean(r["model_proposals"] for r in results[t])
        sd = statistics.stdev(finals) if len(finals) > 1 else 0.0
        print(f"| {t} | {len(finals)} | {statistics.mean(finals):.4f} +- {sd:.4f} | "
              f"{poor:.0%} | {models:.1f} | {prop:.3f} |")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=30)
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--tuners", nargs="+", default=["random", "bayesian", "tpe"],
                    choices=("random", "bayesian", "tpe"))
    ap.add_argument("--json", default=None,
                    help="also write the raw results here (after every run, so a stopped "
                         "benchmark keeps what it finished)")
    ap.add_argument("--load", nargs="+", default=None, metavar="JSON",
                    help="print one table from files written by --json; runs nothing")
    ap.add_argument("--first-seeds", type=int, default=None, metavar="K",
                    help="with --load: only seeds 1..K of each tuner (paired seeds: the same "
                         "oracle seed gives every tuner the same random start)")
    args = ap.parse_args()
    machine = (f"# machine: {platform.node()} {platform.machine()}, {os.cpu_count()} CPUs, "
               f"python {platform.python_version()}")
    if args.load:
        results, trials, header = {}, 0, []
        for path in args.load:
            saved = json.loads(Path(path).read_text())
            results.update({t: rs[:args.first_seeds] for t, rs in saved["results"].items()})
            trials = max(trials, saved["args"]["trials"])
            header.append(f"# from {path}: {saved['header']}")
        print_table(results, trials, header)
        return 0

    import keras_tuner as kt

    from spaces import CNNHyperModel

    warnings.filterwarnings("ignore")
    hypermodel = CNNHyperModel(input_shape=(64, 64, 1), max_gflops=1.0)
    hps = kt.HyperParameters()
    hypermodel.declare_hyperparameters(hps)
    tunable = [hp for hp in hps.space if not isinstance(hp, kt.engine.hyperparameters.Fixed)]
    title = (f"{args.trials} trials x {args.seeds} seeds on the constructed surrogate over the "
             f"shipped CNN space ({len(tunable)} tunable dimensions, "
             f"{sum(bool(hp.conditions) for hp in tunable)} conditional)")
    results: dict[str, list[dict]] = {t: [] for t in args.tuners}
    t_start = time.perf_counter()
    for tuner in args.tuners:
        for seed in range(1, args.seeds + 1):
            t0 = time.perf_counter()
            results[tuner].append(run_tuner(tuner, args.trials, seed, hypermodel, hps))
            best = max(s or 0.0 for s in results[tuner][-1]["scores"])
            print(f"{tuner} seed {seed}: best {best:.4f} ({time.perf_counter() - t0:.0f} s)",
                  file=sys.stderr, flush=True)
            if args.json:
                wall = time.perf_counter() - t_start
                Path(args.json).write_text(json.dumps(
                    {"args": vars(args), "header": f"{title}; {machine[2:]}; wall {wall:.0f} s",
                     "results": results}, indent=1))
    wall = time.perf_counter() - t_start
    print_table(results, args.trials, [f"# tuner comparison: {title}",
                                       f"{machine}; wall {wall:.0f} s"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
