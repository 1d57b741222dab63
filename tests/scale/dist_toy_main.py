"""A toy k-fold tuner run as chief or worker, for the distributed tests (not collected).

It keeps the real search engine's promises that matter to distribution, without training a
network (so three processes fit on two CPU cores): a trial runs ``--folds`` folds of
``--fold-s`` seconds each, skips folds whose ``fold<k>.json`` exists (fold-level resume), logs
every fold fit to ``fits.jsonl`` and writes ``cv.json`` with the tuner id that ran it.

    python tests/scale/dist_toy_main.py RUN_DIR --role chief --oracle 127.0.0.1:PORT
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("run_dir")
    parser.add_argument("--role")
    parser.add_argument("--oracle")
    parser.add_argument("--tuner-id")
    parser.add_argument("--max-trials", type=int, default=4)
    parser.add_argument("--folds", type=int, default=2)
    parser.add_argument("--fold-s", type=float, default=0.3)
    parser.add_argument("--budget-s", type=float, default=None)
    args = parser.parse_args()

    import keras_tuner as kt

    from search import distributed as dist
    from search.store import kt_files

    fold_s, folds = args.fold_s, args.folds

    class Toy(kt.HyperModel):
        def build(self, hp):
            hp.Int("x", 0, 10_000)
            return None

    class ToyCVTuner(kt.engine.base_tuner.BaseTuner):
        def run_trial(self, trial, *fit_args, **fit_kwargs):
            trial_dir = Path(self.get_trial_dir(trial.trial_id))
            scores = []
            for k in range(folds):
                done = trial_dir / f"fold{k}.json"
                if done.exists():  # fold-level resume: never train a finished fold again
                    scores.append(json.loads(done.read_text())["val_score"])
                    continue
                time.sleep(fold_s)
                score = (trial.hyperparameters.get("x") % 97) / 97 + k * 1e-3
                with open(trial_dir / "fits.jsonl", "a") as fh:
                    fh.write(json.dumps({"fold": k, "tuner_id": self.tuner_id,
                                         "pid": os.getpid()}) + "\n")
                tmp = trial_dir / f".fold{k}.tmp"
                tmp.write_text(json.dumps({"fold": k, "val_score": score}))
                os.replace(tmp, done)
                scores.append(score)
            mean = sum(scores) / len(scores)
            (trial_dir / "cv.json").write_text(json.dumps({
                "trial_id": trial.trial_id, "status": "COMPLETED", "tuner_id": self.tuner_id,
                "mean": {"val_score": mean}, "folds": len(scores)}))
            return {"val_score": mean}

    role = dist.resolve_role(args.role, args.oracle, args.tuner_id)
    dist.install()
    # The real CVTuner saves KerasTuner's JSON files atomically; without this the chief killed
    # mid-save leaves an empty chief.json, and its restart dies on a JSONDecodeError (seen in CI).
    kt_files.install_atomic_saves()
    run_dir = Path(args.run_dir)
    if role is not None and not role.is_chief:
        dist.wait_for_oracle(role.host, role.port)
    if args.budget_s is not None:
        dist.set_deadline(time.monotonic() + args.budget_s)
    with dist.role_environment(role):
        oracle = kt.oracles.RandomSearchOracle(
            objective=kt.Objective("val_score", "max"), max_trials=args.max_trials, seed=7)
        tuner = ToyCVTuner(oracle, hypermodel=Toy(), directory=str(run_dir), project_name="toy")
        result = tuner.search()
    print(f"[{role.tuner_id if role else 'single'}] done: {result}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
