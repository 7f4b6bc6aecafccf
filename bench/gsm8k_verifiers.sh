#!/usr/bin/env bash
# GSM8K, first LIMIT test problems: majority, best-of-N under each verifier, beam search
# with the probe, and revise, on one accuracy-versus-tokens plot.
# Needs the majority bank from bench/gsm8k_scaling.sh (OUT/majority8.db). Best-of-N runs
# replay the bank's samples (no new generation; only the verifier's tokens are new); the
# probe is cross-fitted on the bank, so each problem is scored by a fold that never saw it.
# Every step is resumable or skipped when done: rerun the same command to continue.
#   bash bench/gsm8k_verifiers.sh [LIMIT] [MODEL]        STEPS="judge probe beam revise"
set -euo pipefail
LIMIT=${1:-50}
MODEL=${2:-qwen2.5-coder-1.5b}
DATA=${GSM8K:-../shared/data/gsm8k/test.jsonl}
OUT=${OUT:-runs/gsm8k-$LIMIT}
BANK=$OUT/majority8.db
STEPS=${STEPS:-judge probe beam revise}
PONDER=${PONDER:-ponder}
[[ -f $BANK ]] || { echo "no bank at $BANK: run bench/gsm8k_scaling.sh $LIMIT 8 first" >&2; exit 2; }
common=(--task gsm8k --data "$DATA" --limit "$LIMIT" --model "$MODEL" --seed 0)
runs=("$BANK")
for step in $STEPS; do
    case $step in
    judge)
        $PONDER eval "${common[@]}" --replay "$BANK" --strategy best_of_n --n 8 --scorer judge \
            --out "$OUT/bo8-judge.db"
        runs+=("$OUT/bo8-judge.db") ;;
    probe)
        [[ -f $OUT/probe-cv.npz ]] || $PONDER verifier train "$BANK" --folds 2 --max-prefixes 4 \
            --out "$OUT/probe-cv.npz" | tee "$OUT/probe-cv.txt"
        $PONDER eval "${common[@]}" --replay "$BANK" --strategy best_of_n --n 8 \
            --scorer "probe:$OUT/probe-cv.npz" --out "$OUT/bo8-probe.db"
        runs+=("$OUT/bo8-probe.db") ;;
    beam)
        $PONDER eval "${common[@]}" --max-tokens 400 --strategy beam_search --n 4 --width 2 \
            --verifier "probe:$OUT/probe-cv.npz" --out "$OUT/beam4-probe.db"
        runs+=("$OUT/beam4-probe.db") ;;
    revise)
        $PONDER eval "${common[@]}" --max-tokens 400 --strategy revise --n 4 --temperature 0.7 \
            --out "$OUT/revise4.db"
        runs+=("$OUT/revise4.db") ;;
    *) echo "unknown step $step" >&2; exit 2 ;;
    esac
done
$PONDER report "${runs[@]}" --out "$OUT/report-verifiers"
