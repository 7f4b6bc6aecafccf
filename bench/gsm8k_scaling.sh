#!/usr/bin/env bash
# GSM8K, first LIMIT test problems: greedy `single` versus `majority` at n = 1..N from one run.
# Resumable: rerun the same command after an interruption and it continues where it stopped.
# Usage: bash bench/gsm8k_scaling.sh [LIMIT] [N] [MODEL]
set -euo pipefail
LIMIT=${1:-50}
N=${2:-8}
MODEL=${3:-qwen2.5-coder-1.5b}
DATA=${GSM8K:-../shared/data/gsm8k/test.jsonl}
OUT=${OUT:-runs/gsm8k-$LIMIT}
PONDER=${PONDER:-ponder}
mkdir -p "$OUT"
common=(--task gsm8k --data "$DATA" --limit "$LIMIT" --model "$MODEL" --max-tokens 400 --seed 0)
$PONDER eval "${common[@]}" --strategy single --out "$OUT/single.db"
$PONDER eval "${common[@]}" --strategy majority --n "$N" --temperature 0.7 --out "$OUT/majority$N.db"
$PONDER report "$OUT/single.db" "$OUT/majority$N.db" --out "$OUT/report"
