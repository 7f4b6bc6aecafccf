#!/usr/bin/env bash
# Probe verifier vs LLM judge: held-out AUC on rollouts the probe never saw.
# Trains a probe on the graded samples of an eval store (split by problem), then scores
# the held-out problems' samples with the probe and with the judge (same model).
#   bash bench/probe_vs_judge.sh [STORE] [OUT_DIR] [MAX_PREFIXES]
set -euo pipefail
STORE=${1:-runs/gsm8k-50/majority8.db}
OUT=${2:-runs/probe-vs-judge}
PREFIXES=${3:-4}
mkdir -p "$OUT"
# a copy: opening a store switches it to WAL mode and writes files beside it
rm -f "$OUT/rollouts.db-wal" "$OUT/rollouts.db-shm"
cp "$STORE" "$OUT/rollouts.db"
[[ -f "$OUT/probe.npz" ]] || ponder verifier train "$OUT/rollouts.db" --out "$OUT/probe.npz" --heldout 0.3 --seed 0 \
    --max-prefixes "$PREFIXES" --no-progress | tee "$OUT/train.txt"
for spec in judge "probe:$OUT/probe.npz" judge:step; do
    name=${spec%%:*}; [[ $spec == judge:step ]] && name=judge-step
    ponder verifier eval "$OUT/rollouts.db" --verifier "$spec" --heldout-of "$OUT/probe.npz" \
        --no-progress | tee "$OUT/eval-$name.txt"
done
