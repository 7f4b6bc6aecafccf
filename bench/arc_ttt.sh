#!/usr/bin/env bash
# Test-time training on ARC (issue 5's measurement): the LIMIT smallest ARC-AGI-1
# training tasks (fewest grid cells), pass@2 of augmented voting without training
# against the same vote after per-task LoRA training, same model, same tasks; then one
# report and the side-by-side table. Per task the records hold the held-out loss before
# and after training, seconds per phase and peak memory. Resumable: rerun the same
# command to continue; `save` exports both stores to bench/banks/ (JSON lines, gzip) to
# commit them, and a new machine imports them first, so the run goes on where it stopped.
#   bash bench/arc_ttt.sh [LIMIT] [MODEL]        STEPS="vote ttt report table save"
set -euo pipefail
LIMIT=${1:-30}
MODEL=${2:-qwen2.5-coder-0.5b}
OUT=${OUT:-runs/arc-ttt-$LIMIT}
STEPS=${STEPS:-vote ttt report table save}
KEEP=${KEEP:-bench/banks}
PONDER=${PONDER:-ponder}
PYTHON=${PYTHON:-python}
mkdir -p "$OUT"
common=(--tasks arc-train --limit "$LIMIT" --order cells --model "$MODEL" --seed 0)
BANK_PREFIX=arc-ttt-$LIMIT-
source "$(dirname "$0")/_banks.sh"
for step in $STEPS; do
    case $step in
    vote) restore "$OUT/vote.db"; $PONDER ttt "${common[@]}" --no-train --out "$OUT/vote.db" ;;
    ttt) restore "$OUT/ttt.db"; $PONDER ttt "${common[@]}" --out "$OUT/ttt.db" ;;
    report) $PONDER report "$OUT/vote.db" "$OUT/ttt.db" --out "$OUT/report" ;;
    table) $PYTHON bench/arc_ttt_table.py "$OUT/vote.db" "$OUT/ttt.db" | tee "$OUT/table.md" ;;
    save) save "$OUT/vote.db" "$OUT/ttt.db" ;;
    *) echo "unknown step $step" >&2; exit 2 ;;
    esac
done
