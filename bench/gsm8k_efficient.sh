#!/usr/bin/env bash
# Efficient reasoning on GSM8K, the first LIMIT test problems: program-aided answers
# (pal) against chain-of-thought, each single and voting at n = 4, and early answer
# probing (probe_exit) against the full greedy chain; then one report with every run's
# overthinking and the paired comparison of each run with greedy chain-of-thought.
#
#   cot    greedy chain-of-thought (`single`): the baseline. Same command as
#          bench/gsm8k_scaling.sh's, so with the same OUT an existing single.db is reused
#   cot4   majority n=4 at temperature 0.7; when OUT holds gsm8k_scaling.sh's
#          majority8.db, its first 4 samples per problem are replayed (the samples a
#          live n=4 run at seed 0 draws, with their recorded costs) instead of drawn
#   pal    one greedy program per problem, run in the sandbox
#   pal4   4 programs at temperature 0.7, the executed answers vote
#   probe  probe_exit: the greedy chain in chunks of CHUNK tokens, a probe after each,
#          stop when AGREE probes in a row agree
#   report ponder report over all of them, --baseline the greedy chain
#   save   export every run to bench/banks/ (JSON lines, gzip) to commit them; a new
#          machine imports each before its step, so the report can be made again there
# Every step resumes: rerun the same command after an interruption.
#   bash bench/gsm8k_efficient.sh [LIMIT] [MODEL]      STEPS="cot cot4 pal pal4 probe report save"
set -euo pipefail
LIMIT=${1:-50}
MODEL=${2:-qwen2.5-coder-1.5b}
DATA=${GSM8K:-../shared/data/gsm8k/test.jsonl}
OUT=${OUT:-runs/gsm8k-$LIMIT}
CHUNK=${CHUNK:-32}
AGREE=${AGREE:-3}
STEPS=${STEPS:-cot cot4 pal pal4 probe report save}
KEEP=${KEEP:-bench/banks}
PONDER=${PONDER:-ponder}
mkdir -p "$OUT"
common=(--task gsm8k --data "$DATA" --limit "$LIMIT" --model "$MODEL" --max-tokens 400 --seed 0)
cot4_db() {  # the replayed run when the majority-8 bank is there, else the live one
    if [[ -f $OUT/majority8.db ]]; then echo "$OUT/cot-maj4-replay.db"; else echo "$OUT/cot-maj4.db"; fi
}
BANK_PREFIX=gsm8k-$LIMIT-
source "$(dirname "$0")/_banks.sh"
runs() {
    echo "$OUT/single.db" "$(cot4_db)" "$OUT/pal1.db" "$OUT/pal4.db" "$OUT/probe-k$CHUNK-m$AGREE.db"
}
# shellcheck disable=SC2046  # runs() prints paths without spaces
restore $(runs)
for step in $STEPS; do
    case $step in
    cot)
        $PONDER eval "${common[@]}" --strategy single --out "$OUT/single.db" ;;
    cot4)
        replay=()
        [[ -f $OUT/majority8.db ]] && replay=(--replay "$OUT/majority8.db")
        $PONDER eval "${common[@]}" "${replay[@]}" --strategy majority --n 4 --temperature 0.7 \
            --out "$(cot4_db)" ;;
    pal)
        $PONDER eval "${common[@]}" --strategy pal --n 1 --out "$OUT/pal1.db" ;;
    pal4)
        $PONDER eval "${common[@]}" --strategy pal --n 4 --temperature 0.7 --out "$OUT/pal4.db" ;;
    probe)
        $PONDER eval "${common[@]}" --strategy probe_exit -o chunk="$CHUNK" -o agree="$AGREE" \
            --out "$OUT/probe-k$CHUNK-m$AGREE.db" ;;
    report)
        present=()
        for f in $(runs); do
            [[ -f $f ]] && present+=("$f")
        done
        $PONDER report "${present[@]}" --baseline "$OUT/single.db" --out "$OUT/report-efficient" \
            | tee "$OUT/report-efficient.txt" ;;
    save)
        # shellcheck disable=SC2046
        save $(runs) ;;
    *) echo "unknown step $step" >&2; exit 2 ;;
    esac
done
