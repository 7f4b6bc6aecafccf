#!/usr/bin/env bash
# Test-time training on ARC (issue 5's measurement): the LIMIT smallest ARC-AGI-1
# training tasks (fewest grid cells), pass@2 of augmented voting without training
# against the same vote after per-task LoRA training, same model, same tasks; then one
# report. Per task the records hold the held-out loss before and after training,
# seconds per phase and peak memory. Resumable: rerun the same command to continue.
#   bash bench/arc_ttt.sh [LIMIT] [MODEL]        STEPS="vote ttt report"
set -euo pipefail
LIMIT=${1:-30}
MODEL=${2:-qwen2.5-coder-0.5b}
OUT=${OUT:-runs/arc-ttt-$LIMIT}
STEPS=${STEPS:-vote ttt report}
PONDER=${PONDER:-ponder}
mkdir -p "$OUT"
common=(--tasks arc-train --limit "$LIMIT" --order cells --model "$MODEL" --seed 0)
for step in $STEPS; do
    case $step in
    vote) $PONDER ttt "${common[@]}" --no-train --out "$OUT/vote.db" ;;
    ttt) $PONDER ttt "${common[@]}" --out "$OUT/ttt.db" ;;
    report) $PONDER report "$OUT/vote.db" "$OUT/ttt.db" --out "$OUT/report" ;;
    *) echo "unknown step $step" >&2; exit 2 ;;
    esac
done
