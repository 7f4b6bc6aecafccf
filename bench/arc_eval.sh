#!/usr/bin/env bash
# Test-time training where Akyurek et al. measured it (issue 29): the LIMIT ARC-AGI-1
# evaluation tasks with the fewest grid cells, the paper's four-way comparison (base or
# fine-tuned model, x augmented vote or per-task LoRA), its ablations, and ARC-AGI-2.
# Every step is resumable (rerun the same command); `save` exports the stores to
# bench/banks/ and a new machine imports them first. The fine-tuned model (about 2 GB) is
# not committed: stage 1's adapter alone is (float16, see `save`), and a new
# machine merges it again instead of training. The per-task adapters (about 17 MB a task)
# are not committed: a step that reuses them retrains the missing ones, seeded.
#
#   bash bench/arc_eval.sh [LIMIT] [MODEL]        STEPS="vote ttt ..." (default: all below)
#
# TTT_OPTS are added to every `ponder ttt` (for example "--executor ray --actors 2": one
# task per core, each actor one torch thread, into the same resumable store). ARC2_OPTS
# replace them for the ARC-AGI-2 steps (default "--threads 2": one process, since those
# tasks have 668-1,168 cells and two at once could outgrow a 24 GB machine).
#
# Every run uses DTYPE (default float32, as the training-set run). `mixed` (float32
# weights, bfloat16 autocast matmuls) was about 1.7x faster than float32 on a machine
# with AMX, but 2.9x slower on one without (2026-12-07: no AMX, no AVX-512 BF16;
# `python bench/ttt_precision.py`), and our machines vary from session to session: one
# dtype for every run keeps the comparisons about the method. The first base-vote run
# used mixed: kept as arc-eval-LIMIT-base-vote-mixed.jsonl.gz, outside the table.
#
# Steps (stores in OUT, default runs/arc-eval-LIMIT):
#   vote       base model, augmented vote, no training            base-vote.db
#   ttt        base model, per-task LoRA (the training-set run's settings)   base-ttt.db
#   finetune   stage 1: one LoRA on the FT_TASKS smallest ARC-AGI-1 *training* tasks
#              (FT_STEPS steps, rank FT_RANK, lr FT_LR), merged: OUT/ft-model; checkpoints
#              every 50 steps (the evaluation tasks are another set: never trained on);
#              given KEEP/arc-eval-LIMIT-ft-adapter.pt (what `save` keeps), it rebuilds
#              the model from that adapter instead of training
#   ft-vote    fine-tuned model, augmented vote                     ft-vote.db
#   ft-ttt     fine-tuned model, per-task LoRA                      ft-ttt.db
#   noaug pairs rank32   ablations of BEST-ttt (default ft): training without
#              augmentations, on the plain demonstrations instead of leave-one-out tasks,
#              LoRA rank 32 (alpha 64) instead of 8      BEST-ttt-{noaug,pairs,rank32}.db
#   identity   inference under the identity only, BEST's saved adapters reused (the table
#              also derives it, and the flat vote, from BEST-ttt's stored predictions)
#   likelihood the two attempts by augmented likelihood instead of votes (an extension;
#              BEST's saved adapters reused)                   BEST-ttt-likelihood.db
#   colours    BEST's saved adapters answering under 4 colour maps per symmetry (32
#              predictions per test input): the flat against the two-level vote, which
#              with one prediction per symmetry cannot differ     BEST-ttt-colours4.db
#   arc2-vote arc2   the ARC2_LIMIT smallest ARC-AGI-2 evaluation tasks: BEST's model
#              with vote only, and with per-task LoRA        arc2-vote.db, arc2-ttt.db
#   table      bench/arc_eval_table.py OUT: the four-way table, ablations, per task,
#              ARC-AGI-2, and the cost model             OUT/table.md
#   save       export every store to bench/banks/arc-eval-LIMIT-*.jsonl.gz, and stage 1's
#              adapter to bench/banks/arc-eval-LIMIT-ft-adapter.pt
set -euo pipefail
LIMIT=${1:-30}
MODEL=${2:-qwen2.5-coder-0.5b}
OUT=${OUT:-runs/arc-eval-$LIMIT}
BEST=${BEST:-ft}
FT_TASKS=${FT_TASKS:-200}
FT_STEPS=${FT_STEPS:-1500}
FT_RANK=${FT_RANK:-32}
FT_LR=${FT_LR:-2e-4}
ARC2_LIMIT=${ARC2_LIMIT:-10}
DTYPE=${DTYPE:-float32}
read -r -a TTT_OPTS <<< "${TTT_OPTS:-}"
read -r -a ARC2_OPTS <<< "${ARC2_OPTS---threads 2}"
STEPS=${STEPS:-vote ttt finetune ft-vote ft-ttt noaug pairs rank32 identity likelihood colours arc2-vote arc2 table save}
KEEP=${KEEP:-bench/banks}
PONDER=${PONDER:-ponder}
PYTHON=${PYTHON:-python}
mkdir -p "$OUT"
BANK_PREFIX=arc-eval-$LIMIT-
source "$(dirname "$0")/_banks.sh"
FT_MODEL=$OUT/ft-model
model_of() { [[ $1 == ft ]] && echo "$FT_MODEL" || echo "$MODEL"; }
BEST_MODEL=$(model_of "$BEST")
tasks=(--tasks arc-eval --limit "$LIMIT" --order cells --seed 0 --dtype "$DTYPE" "${TTT_OPTS[@]}")
arc2=(--tasks arc2-eval --limit "$ARC2_LIMIT" --order cells --seed 0 --dtype "$DTYPE" "${ARC2_OPTS[@]}")
ttt() {  # ttt STORE MODEL [options...]: restore, then run (or resume) into OUT/STORE
    local store=$OUT/$1 model=$2
    shift 2
    restore "$store"
    $PONDER ttt "${tasks[@]}" --model "$model" --out "$store" "$@"
}
FT_ADAPTER=$FT_MODEL.adapter.pt
KEPT_ADAPTER=$KEEP/${BANK_PREFIX}ft-adapter.pt
finetune() {  # train stage 1, or rebuild its model from the adapter a finished run left
    [[ -f $FT_ADAPTER || ! -f $KEPT_ADAPTER ]] || cp "$KEPT_ADAPTER" "$FT_ADAPTER"
    [[ -d $FT_MODEL ]] || $PONDER finetune --tasks arc-train --order cells \
        --limit "$FT_TASKS" --model "$MODEL" --steps "$FT_STEPS" --rank "$FT_RANK" \
        --alpha $((2 * FT_RANK)) --lr "$FT_LR" --seed 0 --dtype "$DTYPE" --out "$FT_MODEL"
}
need_ft() {  # the fine-tuned model where BEST is ft: rebuilt from a saved adapter, if any
    [[ $BEST_MODEL != "$FT_MODEL" || -d $FT_MODEL ]] && return
    [[ -f $FT_ADAPTER || -f $KEPT_ADAPTER ]] && { finetune; return; }
    echo "no $FT_MODEL: run the finetune step first (or BEST=base)" >&2
    exit 2
}
for step in $STEPS; do
    case $step in
    vote) ttt base-vote.db "$MODEL" --no-train ;;
    ttt) ttt base-ttt.db "$MODEL" ;;
    finetune) finetune ;;
    ft-vote) need_ft; ttt ft-vote.db "$FT_MODEL" --no-train ;;
    ft-ttt) need_ft; ttt ft-ttt.db "$FT_MODEL" ;;
    noaug) need_ft; ttt "$BEST-ttt-noaug.db" "$BEST_MODEL" --no-augment ;;
    pairs) need_ft; ttt "$BEST-ttt-pairs.db" "$BEST_MODEL" --train-data pairs ;;
    rank32) need_ft; ttt "$BEST-ttt-rank32.db" "$BEST_MODEL" --rank 32 --alpha 64 ;;
    identity)
        need_ft
        ttt "$BEST-ttt-identity.db" "$BEST_MODEL" --symmetries identity \
            --adapters "$OUT/$BEST-ttt.adapters" ;;
    likelihood)
        need_ft
        ttt "$BEST-ttt-likelihood.db" "$BEST_MODEL" --select likelihood \
            --adapters "$OUT/$BEST-ttt.adapters" ;;
    colours)
        need_ft
        ttt "$BEST-ttt-colours4.db" "$BEST_MODEL" --colour-variants 4 \
            --adapters "$OUT/$BEST-ttt.adapters" ;;
    arc2-vote)
        need_ft; restore "$OUT/arc2-vote.db"
        $PONDER ttt "${arc2[@]}" --model "$BEST_MODEL" --no-train --out "$OUT/arc2-vote.db" ;;
    arc2)
        need_ft; restore "$OUT/arc2-ttt.db"
        $PONDER ttt "${arc2[@]}" --model "$BEST_MODEL" --out "$OUT/arc2-ttt.db" ;;
    table) $PYTHON bench/arc_eval_table.py "$OUT" --best "$BEST" | tee "$OUT/table.md" ;;
    save)
        save "$OUT"/*.db
        [[ ! -f $FT_ADAPTER ]] || cp "$FT_ADAPTER" "$KEPT_ADAPTER" ;;
    *) echo "unknown step $step" >&2; exit 2 ;;
    esac
done
