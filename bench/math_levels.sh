#!/usr/bin/env bash
# MATH-500 by level: does the best use of test-time compute depend on difficulty, as
# Snell et al. (2024) report (sequential revisions pay on easy questions, search on hard
# ones)? On the first EACH problems of each level in LEVELS (default 1 and 5), by steps:
#   single  greedy, one answer;
#   bank    majority at n=4, temperature 0.7: parallel sampling, and the probe's data;
#   revise  one chain of 4 attempts, each shown the previous ones (sequential);
#   probe   a probe verifier cross-fitted on all levels' banks (2 folds: each problem is
#           scored by the fold that never saw it; it needs right and wrong rollouts
#           both, so a tiny smoke run where every sample is wrong stops here);
#   beam    step-level beam search with that probe, 4 beams, width 2 (search);
#   rank    the same probe over the bank's 4 samples, replayed (no new generation):
#           best-of-4 and probe-weighted majority of 4 (parallel with a verifier);
#   report  one report per level (accuracy against tokens, paired against greedy);
#   save    export every run to bench/banks/ (JSON lines, gzip) to commit them: a new
#           machine imports each before its step and goes on where it stopped.
# Resumable: rerun the same command after an interruption and it continues.
# Usage: bash bench/math_levels.sh [EACH] [MODEL]
#        STEPS="single bank revise probe beam rank report save" LEVELS="1 5"
# Settings: OUT (default runs/math-levels-EACH), MAX_TOKENS (512), DATA, KEEP, PONDER.
set -euo pipefail
EACH=${1:-10}
MODEL=${2:-qwen2.5-coder-1.5b}
LEVELS=${LEVELS:-1 5}
DATA=${DATA:-../shared/data/math500/test.jsonl}
OUT=${OUT:-runs/math-levels-$EACH}
MAX_TOKENS=${MAX_TOKENS:-512}
KEEP=${KEEP:-bench/banks}
STEPS=${STEPS:-single bank revise probe beam rank report save}
PONDER=${PONDER:-ponder}
mkdir -p "$OUT"
BANK_PREFIX=math-levels-$EACH-
source "$(dirname "$0")/_banks.sh"
PROBE=$OUT/probe-cv.npz
# every run of a level, as store name suffixes, in the report's order
RUNS=(single maj4 revise4 beam4-probe best_of_n-probe weighted_majority-probe)
for step in $STEPS; do
    for level in $LEVELS; do
        run=$OUT/L$level
        stores=("${RUNS[@]/#/$run-}")
        stores=("${stores[@]/%/.db}")
        sel=(--task math500 --data "$DATA" --where "level=$level" --limit-each "$EACH"
             --model "$MODEL" --max-tokens "$MAX_TOKENS" --seed 0)
        case $step in
        single)
            restore "$run-single.db"
            $PONDER eval "${sel[@]}" --strategy single --out "$run-single.db" ;;
        bank)
            restore "$run-maj4.db"
            $PONDER eval "${sel[@]}" --strategy majority --n 4 --temperature 0.7 \
                --out "$run-maj4.db" ;;
        revise)
            restore "$run-revise4.db"
            $PONDER eval "${sel[@]}" --strategy revise --n 4 --temperature 0.7 \
                --out "$run-revise4.db" ;;
        probe)
            [[ $level == "${LEVELS%% *}" ]] || continue  # one probe for all levels
            [[ -f $PROBE ]] && continue
            banks=()
            for l in $LEVELS; do banks+=("$OUT/L$l-maj4.db"); done
            $PONDER verifier train "${banks[@]}" --task math500 --data "$DATA" \
                --model "$MODEL" --folds 2 --max-prefixes 4 --out "$PROBE" \
                | tee "$OUT/probe-cv.txt" ;;
        beam)
            restore "$run-beam4-probe.db"
            $PONDER eval "${sel[@]}" --strategy beam_search --n 4 --width 2 \
                --verifier "probe:$PROBE" --out "$run-beam4-probe.db" ;;
        rank)
            for how in best_of_n weighted_majority; do
                restore "$run-maj4.db" "$run-$how-probe.db"
                $PONDER eval "${sel[@]}" --replay "$run-maj4.db" --strategy "$how" --n 4 \
                    --scorer "probe:$PROBE" --out "$run-$how-probe.db"
            done ;;
        report)
            runs=()
            for f in "${stores[@]}"; do
                [[ -f $f ]] && runs+=("$f")
            done
            [[ ${#runs[@]} -gt 0 ]] || { echo "level $level: no runs to report" >&2; continue; }
            base=()
            [[ -f $run-single.db ]] && base=(--baseline "$run-single.db")
            $PONDER report "${runs[@]}" "${base[@]}" --out "$OUT/report-L$level" \
                | tee "$OUT/report-L$level.txt" ;;
        save) save "${stores[@]}" ;;
        *) echo "unknown step $step" >&2; exit 2 ;;
        esac
    done
done
