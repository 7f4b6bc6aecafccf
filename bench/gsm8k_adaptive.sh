#!/usr/bin/env bash
# Adaptive compute and the compute-optimal policy on GSM8K (issue 4's measurements).
#
#   bank   the first TEST test problems at majority n=16; when runs/gsm8k-50/majority8.db
#          (bench/gsm8k_scaling.sh) is there, it is topped up with --replay-extend, so
#          only the missing samples are drawn (the same samples a live run draws)
#   train  the first TRAIN train problems at majority n=16: the calibration split
#   adapt  adaptive_consistency at each setting of STOPS and esc, capped at 16, replayed
#          from the test bank and from the train bank (into OUT/train/)
#   choose on the train bank, the setting with the fewest samples per question within
#          1 point of majority n=16's accuracy there; the table shows every setting's
#          test numbers beside it (bench/choose_stop.py)
#   policy ponder optimize on the train bank (a pilot of PILOT samples, 3 bins), once
#          per allocation of ALLOCATE (bin: each bin within the budget, as Snell et al.;
#          mean: the budget bounds the mean over all questions); each policy replayed on
#          the test bank at every budget of BUDGETS (OUT/optimal-ALLOC-BUDGET.db)
#   report one plot, per-bin breakdown (oracle bins from the test bank), efficiency
#          table against majority n=16
#   save   export both banks to bench/banks/ (JSON lines, gzip) to commit them: a new
#          machine imports them before the bank and train steps, so a measurement
#          that takes longer than one machine's life goes on where it stopped
# Every step resumes or is skipped when done: rerun the same command to continue.
#   bash bench/gsm8k_adaptive.sh          STEPS="bank train adapt choose policy report save"
set -euo pipefail
TEST=${TEST:-100}
TRAIN=${TRAIN:-64}
MODEL=${MODEL:-qwen2.5-coder-1.5b}
DATA=${DATA:-../shared/data/gsm8k}
OUT=${OUT:-runs/gsm8k-adaptive}
SEED_BANK=${SEED_BANK:-runs/gsm8k-50/majority8.db}
PILOT=${PILOT:-2}          # chosen on the train bank (BENCHMARKS.md, adaptive section)
ALLOCATE=${ALLOCATE:-bin mean}
# the lowest budget must pay for the pilot: about 650 tokens for 2 samples, 1,300 for 4
BUDGETS=${BUDGETS:-700,1000,1400,1800,2400,2800,3200,4200,5200}
STEPS=${STEPS:-bank train adapt choose policy report save}
# adaptive_consistency settings replayed by adapt, each RULE:BATCH:THRESHOLD (min_n = BATCH)
STOPS=${STOPS:-beta:2:0.95 dirichlet:2:0.95 beta:1:0.9 beta:1:0.8 dirichlet:1:0.8}
KEEP=${KEEP:-bench/banks}
PONDER=${PONDER:-ponder}
mkdir -p "$OUT"
BANK=$OUT/test-maj16.db
CAL=$OUT/train-maj16.db
test_args=(--task gsm8k --data "$DATA/test.jsonl" --limit "$TEST" --model "$MODEL" --seed 0)
train_args=(--task gsm8k --data "$DATA/train.jsonl" --limit "$TRAIN" --model "$MODEL" --seed 0)
sampling=(--strategy majority --n 16 --temperature 0.7 --max-tokens 400)
BANK_PREFIX=gsm8k-
source "$(dirname "$0")/_banks.sh"
stop_name() {  # beta:1:0.8 -> ac16-beta-b1-t0.8
    local rule batch threshold
    IFS=: read -r rule batch threshold <<< "$1"
    echo "ac16-$rule-b$batch-t$threshold"
}
replay_stops() {  # BANK DIR EVAL_ARGS...: every STOPS setting and esc, replayed from BANK
    local bank=$1 dir=$2 stop rule batch threshold
    shift 2
    mkdir -p "$dir"
    for stop in $STOPS; do
        IFS=: read -r rule batch threshold <<< "$stop"
        $PONDER eval "$@" --replay "$bank" --strategy adaptive_consistency -o max_n=16 \
            -o rule="$rule" -o batch="$batch" -o min_n="$batch" -o threshold="$threshold" \
            --out "$dir/$(stop_name "$stop").db"
    done
    $PONDER eval "$@" --replay "$bank" --strategy esc -o max_n=16 --out "$dir/esc16.db"
}
for step in $STEPS; do
    case $step in
    bank)
        restore "$BANK"
        extend=()
        [[ -f $SEED_BANK ]] && extend=(--replay "$SEED_BANK" --replay-extend)
        $PONDER eval "${test_args[@]}" "${sampling[@]}" "${extend[@]}" --out "$BANK" ;;
    train)
        restore "$CAL"
        $PONDER eval "${train_args[@]}" "${sampling[@]}" --out "$CAL" ;;
    adapt)
        replay_stops "$BANK" "$OUT" "${test_args[@]}"
        replay_stops "$CAL" "$OUT/train" "${train_args[@]}" ;;
    choose)
        names=(esc16)
        for stop in $STOPS; do names+=("$(stop_name "$stop")"); done
        python "$(dirname "$0")/choose_stop.py" "$OUT/train" "$OUT" "${names[@]}" \
            --baseline "$CAL" "$BANK" | tee "$OUT/choose.txt" ;;
    policy)
        for alloc in $ALLOCATE; do
            policy=$OUT/policy-$alloc.json
            # a replay store resumes whatever it holds: drop those of an older policy
            rm -f "$OUT"/optimal-"$alloc"-*.db
            $PONDER optimize "$CAL" --out "$policy" --budgets "$BUDGETS" --pilot "$PILOT" \
                --bins 3 --allocate "$alloc" | tee "$OUT/optimize-$alloc.txt"
            for b in ${BUDGETS//,/ }; do
                $PONDER eval "${test_args[@]}" --replay "$BANK" --strategy "optimal:$policy" \
                    --budget "$b" --out "$OUT/optimal-$alloc-$b.db"
            done
        done ;;
    report)
        runs=("$BANK")
        for f in "$OUT"/ac16-*.db "$OUT"/esc16.db "$OUT"/optimal-*.db; do
            [[ -f $f ]] && runs+=("$f")
        done
        $PONDER report "${runs[@]}" --bins-from "$BANK" --bins 3 --out "$OUT/report" ;;
    save) save "$BANK" "$CAL" ;;
    *) echo "unknown step $step" >&2; exit 2 ;;
    esac
done
