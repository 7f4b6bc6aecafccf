#!/usr/bin/env bash
# Which selection pays? (issue 27): the banks its selection rules are replayed on.
#   math-bank  MATH-500, the first EACH problems of each level 1-5 (default 20: 100
#              problems), majority at n=8, temperature 0.7: the bank the selection rules,
#              the combined verifier and the search rows are measured on. The long pole:
#              about 2-3 minutes a problem on 2 cores with qwen2.5-coder-1.5b.
#   save       export the bank to bench/banks/ (JSON lines, gzip) to commit it; a new
#              machine imports it first and the bank goes on where it stopped.
# Resumable: rerun the same command after an interruption and it continues.
# Usage: bash bench/selection.sh [EACH] [MODEL]        STEPS="math-bank save"
# Settings: OUT (default runs/selection), MAX_TOKENS (512), DATA, KEEP, PONDER.
set -euo pipefail
EACH=${1:-20}
MODEL=${2:-qwen2.5-coder-1.5b}
DATA=${DATA:-../shared/data/math500/test.jsonl}
OUT=${OUT:-runs/selection}
MAX_TOKENS=${MAX_TOKENS:-512}
KEEP=${KEEP:-bench/banks}
STEPS=${STEPS:-math-bank save}
PONDER=${PONDER:-ponder}
mkdir -p "$OUT"
BANK_PREFIX=selection-
source "$(dirname "$0")/_banks.sh"
MATH=$OUT/math500-5x$EACH-maj8.db
for step in $STEPS; do
    case $step in
    math-bank)
        restore "$MATH"
        $PONDER eval --task math500 --data "$DATA" --where level=1,2,3,4,5 --limit-each "$EACH" \
            --model "$MODEL" --max-tokens "$MAX_TOKENS" --seed 0 \
            --strategy majority --n 8 --temperature 0.7 --out "$MATH" ;;
    save) save "$MATH" ;;
    *) echo "unknown step $step" >&2; exit 2 ;;
    esac
done
