#!/usr/bin/env bash
# Reference run on the real chest X-ray data (issue 7): the whole flow on a 2-core CPU.
#
#   bash benchmarks/reference_run.sh            # defaults below
#   BUDGET_MIN=60 bash benchmarks/reference_run.sh
#
# CNN and ANN searches at 64 px grayscale with Hyperband and 3 patient-grouped folds, each family
# within BUDGET_MIN minutes (default 25; at most 60 per the issue), over the shipped space
# trimmed for a CPU (benchmarks/reference_space.toml), then leaderboard, analysis,
# export of both winners and the side-by-side comparison on the carved patient-grouped test split.
# Resumable: if cut off during the search, run it again and the search resumes from its finished
# folds; once the search has ended (completed or budget spent), a rerun skips straight to the
# steps after it.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/bootstrap.sh
DATA="${DATA:-../shared/data/chest_xray}"
BUDGET_MIN="${BUDGET_MIN:-25}"
SPACE="${SPACE:-benchmarks/reference_space.toml}"
RUN_DIR="${RUN_DIR:-runs/reference}"
MAX_EPOCHS="${MAX_EPOCHS:-12}"
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
    --tuner hyperband --folds 3 --max-trials 500 --max-epochs "$MAX_EPOCHS" --patience 3 \
    --time-budget "$BUDGET_MIN" --space "$SPACE" --seed "$SEED" --run-dir "$RUN_DIR" --quiet
fi
echo "[reference] wall time: $(( $(date +%s) - start )) s on $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs))"
