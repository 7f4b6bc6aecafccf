#!/usr/bin/env bash
# Free-form answers: which rule picks the answer from the same N samples?
# Greedy `single`, plain `majority` over exact strings (the bank of N samples), then, on
# that bank's samples (--replay: no new sampling), `semantic_majority` with each
# clustering (text, embed, judge) and `universal_self_consistency`. Only the judge's
# questions and USC's selection generate anew; every run's tokens include them.
#
# Data: LIMIT single-hop questions of FanOutQA's dev set (short Wikipedia answers),
# built offline from the fanoutqa wheel on PyPI by bench/freeform_data.py; or any
# free-form JSONL file as DATA=path. Grading: exact match after normalisation
# (GRADER=exact, default) or GRADER=judge (the same model, its tokens apart).
# SAMPLES_FROM=DIR takes the greedy answers and the N samples from an earlier run's
# single.db and majority$N.db (--replay: none drawn again), so a judge-graded pass over
# an exact-graded one spends only the judge's grading and the rules' own calls.
# Needs the embed extra (pip install -e '.[embed]') for cluster=embed.
# Resumable: rerun the same command after an interruption and it continues.
# Usage: bash bench/freeform.sh [LIMIT] [N] [MODEL]
set -euo pipefail
LIMIT=${1:-100}
N=${2:-8}
MODEL=${3:-qwen2.5-coder-1.5b}
GRADER=${GRADER:-exact}
OUT=${OUT:-runs/freeform-$LIMIT-$GRADER}
PONDER=${PONDER:-ponder}
PYTHON=${PYTHON:-python}
mkdir -p "$OUT"
DATA=${DATA:-$OUT/fanoutqa-leaves.jsonl}
if [ ! -f "$DATA" ]; then
    $PYTHON bench/freeform_data.py --out "$DATA" --limit "$LIMIT"
fi
common=(--task jsonl --data "$DATA" --id-field id --limit "$LIMIT" --answer-type free
        --grader "$GRADER" --model "$MODEL" --max-tokens 256 --seed 0 --no-progress)
FROM=${SAMPLES_FROM:-$OUT}
if [ -n "${SAMPLES_FROM:-}" ]; then
    $PONDER eval "${common[@]}" --strategy single --replay "$FROM/single.db" \
        --out "$OUT/single.db"
    $PONDER eval "${common[@]}" --strategy majority --n "$N" --temperature 0.7 \
        --replay "$FROM/majority$N.db" --out "$OUT/majority$N.db"
else
    $PONDER eval "${common[@]}" --strategy single --out "$OUT/single.db"
    $PONDER eval "${common[@]}" --strategy majority --n "$N" --temperature 0.7 \
        --out "$OUT/majority$N.db"
fi
bank=(--replay "$FROM/majority$N.db" --n "$N")
for cluster in text embed judge; do
    $PONDER eval "${common[@]}" "${bank[@]}" --strategy semantic_majority -o cluster=$cluster \
        --out "$OUT/semantic-$cluster$N.db"
done
$PONDER eval "${common[@]}" "${bank[@]}" --strategy universal_self_consistency \
    --out "$OUT/usc$N.db"
$PONDER report "$OUT/single.db" "$OUT/majority$N.db" "$OUT"/semantic-*"$N".db "$OUT/usc$N.db" \
    --out "$OUT/report"
