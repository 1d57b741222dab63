#!/usr/bin/env bash
# Reference run on the real chest X-ray data (issue 7): the whole flow on a 2-core CPU.
#
#   bash benchmarks/reference_run.sh            # defaults below
#   BUDGET_MIN=60 bash benchmarks/reference_run.sh
#
# CNN and ANN searches at 64 px grayscale and 3 patient-grouped folds, each family within
# BUDGET_MIN minutes (default 30), over the shipped space trimmed for a CPU and aimed at
# generalisation (benchmarks/reference_space.toml), selected by the default objective
# (val_auc_geometric, the shortcut probe that ranks models as a held-out folder does), then
# leaderboard, analysis, export of both winners as fold ensembles, and the side-by-side
# comparison on the carved patient-grouped test split (in-distribution: not evidence of
# generalisation to another hospital).
# Random search with up to 30 epochs and patience 6 gives slow-learning augmented models the
# budget they need (Hyperband's first rounds of 1-3 epochs cull them before they learn).
# Resumable: if cut off during the search, run it again and the search resumes from its finished
# folds; once the search has ended (completed or budget spent), a rerun skips straight to the
# steps after it.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/bootstrap.sh
DATA="${DATA:-../shared/data/chest_xray}"
BUDGET_MIN="${BUDGET_MIN:-30}"
SPACE="${SPACE:-benchmarks/reference_space.toml}"
RUN_DIR="${RUN_DIR:-runs/reference}"
MAX_EPOCHS="${MAX_EPOCHS:-30}"
PATIENCE="${PATIENCE:-6}"
TUNER="${TUNER:-random}"
SEED="${SEED:-42}"

if [ ! -d "$DATA" ]; then
  echo "error: data folder $DATA not found; set DATA=/path/to/chest_xray (see README, Data)." >&2
  exit 2
fi
status=$("$PY" -c 'import json,sys; print(json.load(open(sys.argv[1])).get("status",""))' \
         "$RUN_DIR/run.json" 2>/dev/null || true)
start=$(date +%s)
if [ "$status" = "completed" ] || [ "$status" = "budget_exhausted" ]; then
  echo "[reference] search already ended ($status); continuing with leaderboard, export, compare"
  "$PY" run_search.py leaderboard --run-dir "$RUN_DIR" --top-k 10
  "$PY" run_search.py analyze --run-dir "$RUN_DIR"
  "$PY" run_search.py export --run-dir "$RUN_DIR" --model both
  "$PY" run_search.py compare --run-dir "$RUN_DIR"
else
  "$PY" run_search.py run --data "$DATA" --image-size 64 --color-mode grayscale \
    --tuner "$TUNER" --folds 3 --max-trials 500 --max-epochs "$MAX_EPOCHS" --patience "$PATIENCE" \
    --time-budget "$BUDGET_MIN" --space "$SPACE" --seed "$SEED" --run-dir "$RUN_DIR" --quiet
fi
echo "[reference] wall time: $(( $(date +%s) - start )) s on $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs))"
