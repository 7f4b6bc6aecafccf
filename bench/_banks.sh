# Sourced by the bench scripts: how a long run's store travels between machines.
# runs/ is not in git, so a script's `save` step exports its stores to KEEP (bench/banks,
# JSON lines, gzip) to be committed, and each step first imports the committed export of
# its store when this machine has none; the step then resumes where the export stopped.
# The sourcing script sets KEEP, PONDER and BANK_PREFIX (the exports' name prefix).
kept() {  # the committed export of a store: KEEP/BANK_PREFIX<store name>.jsonl.gz
    echo "$KEEP/$BANK_PREFIX$(basename "$1" .db).jsonl.gz"
}
restore() {  # import the committed export of each store this machine lacks
    local db
    for db; do
        [[ -f $db || ! -f $(kept "$db") ]] || $PONDER import "$(kept "$db")" "$db"
    done
}
save() {  # export each store that exists, for committing
    local db
    mkdir -p "$KEEP"
    for db; do
        [[ ! -f $db ]] || $PONDER export "$db" "$(kept "$db")"
    done
}
