#!/usr/bin/env bash
# Rebuild every bench report from the committed banks alone (no generation) into ROOT:
# each bank is imported to the path its bench script expects, then each script runs its
# report steps (gsm8k_adaptive also replays its adaptive and policy runs from the banks).
# Run it on two commits and compare the figures with bench/reports_compare.py:
#   bash bench/reports_check.sh runs/check-before      (on the old commit)
#   bash bench/reports_check.sh runs/check-after
#   python bench/reports_compare.py runs/check-before runs/check-after
# Settings: PONDER (default ponder), PYTHON (python), KEEP (bench/banks).
set -euo pipefail
ROOT=${1:?usage: bench/reports_check.sh ROOT}
KEEP=${KEEP:-bench/banks}
PONDER=${PONDER:-ponder}
PYTHON=${PYTHON:-python}
here=$(dirname "$0")
bring() {  # BANK_NAME DB: import KEEP/BANK_NAME.jsonl.gz to DB unless it is there
    mkdir -p "$(dirname "$2")"
    [[ -f $2 ]] || $PONDER import "$KEEP/$1.jsonl.gz" "$2" >/dev/null
}
for name in single samples8 best8-visible behaviour8; do
    bring "humaneval-164-$name" "$ROOT/humaneval-164/$name.db"
done
for name in single cot-maj4 pal1 pal4 probe-k32-m3; do
    bring "gsm8k-50-$name" "$ROOT/gsm8k-50/$name.db"
done
for level in 1 5; do
    for name in single maj4 revise4 beam4-probe best_of_n-probe weighted_majority-probe; do
        bring "math-levels-10-L$level-$name" "$ROOT/math-levels-10/L$level-$name.db"
    done
done
bring gsm8k-test-maj16 "$ROOT/gsm8k-adaptive/test-maj16.db"
bring gsm8k-train-maj16 "$ROOT/gsm8k-adaptive/train-maj16.db"
for name in vote ttt; do
    bring "arc-ttt-30-$name" "$ROOT/arc-ttt-30/$name.db"
done
export PONDER PYTHON KEEP
OUT=$ROOT/humaneval-164 STEPS=report bash "$here/humaneval.sh" 164 8 > "$ROOT/humaneval.txt"
OUT=$ROOT/gsm8k-50 STEPS=report bash "$here/gsm8k_efficient.sh" 50 > "$ROOT/gsm8k-efficient.txt"
OUT=$ROOT/math-levels-10 STEPS=report bash "$here/math_levels.sh" 10 > "$ROOT/math-levels.txt"
OUT=$ROOT/arc-ttt-30 STEPS="report table" bash "$here/arc_ttt.sh" 30 > "$ROOT/arc-ttt.txt"
OUT=$ROOT/gsm8k-adaptive STEPS="adapt choose policy report" bash "$here/gsm8k_adaptive.sh" \
    > "$ROOT/gsm8k-adaptive.txt" 2> "$ROOT/gsm8k-adaptive.err"
echo "reports rebuilt under $ROOT"
