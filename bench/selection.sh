#!/usr/bin/env bash
# Which selection pays? (issue 27): the banks its selection rules are replayed on.
#   math-bank  MATH-500, the first EACH problems of each level 1-5 (default 20: 100
#              problems), majority at n=8, temperature 0.7, features and hidden states
#              captured while sampling: the bank the selection rules, the combined
#              verifier and the search rows are measured on. The long pole: about 2-3
#              minutes a problem on 2 cores with qwen2.5-coder-1.5b.
#   gsm8k-features  token-confidence features and final-layer hidden states (ponder bank
#              features --hidden) for the committed
#              GSM8K banks, majority n = 16 on the first 64 train and 100 test problems
#              (bench/banks/gsm8k-{train,test}-maj16.jsonl.gz, imported to OUT first):
#              about 80 and 130 minutes on 2 cores.
#   gsm8k-select  ponder bank select: every selection rule against majority on the test
#              bank, the combined verifier fitted on the train bank, the rule chosen there;
#              writes the combined verifier and the joint hidden-state probe (--scorer
#              combined:PATH, hidden:PATH)
#   gsm8k-tempered  weighted votes by the joint probe and the combined verifier with their
#              weights tempered (weighted[S,K]: the weight to the power K), K chosen on train
#   gsm8k-judge   the model as judge of the test bank's samples, whole (judge) and step
#              by step (judge:step, the lowest step's score), on the first JUDGE_LIMIT
#              (default 20) problems by replay: AUC, cost, weighted and best-of-n votes
#              (bench/judge_signal.py)
#   gsm8k-probe-curve  the joint probe fitted on 8 to 64 of the train bank's problems (5
#              random draws each), measured on test: does a larger train bank pay?
#   gsm8k-stop    ponder bank stop: stopping by vote share or vote margin (unweighted,
#              by the combined verifier, by the hidden-state probes), chosen on train,
#              on test
#   gsm8k-policy  ponder optimize on the train bank, measured on the test bank
#              (--test): with the agreement pilot of the unscored banks, and with the
#              combined verifier's scores (train cross-fitted, test by the verifier
#              fitted on train; ponder bank score) and their score pilot, and the same
#              with the joint hidden-state probe's scores (after gsm8k-select)
#   gsm8k-policy-stops  the same three policies (after gsm8k-policy) with stopping rules
#              in the menu (ponder optimize --stop-margins/--stop-shares: weighted_stop
#              replayed on the pilot run, unweighted and by the bank's scorer)
#   gsm8k-pal-banks  PAL banks for the policy's menu: one greedy program (pal1) and 4 at
#              temperature 0.7 (pal4) on the train bank's 64 problems and all 100 test
#              problems (the committed 50-problem test banks are topped up)
#   gsm8k-policy-pal  ponder optimize with chain of thought, pal1 and pal4 in the menu (and
#              the stopping rules), agreement pilot and the probe-scored banks (after
#              gsm8k-policy and gsm8k-pal-banks)
#   gsm8k-hybrid-chosen  bench/hybrid_choice.py: CoT + PAL votes chosen on the train banks
#              (after gsm8k-policy and gsm8k-pal-banks): for each n of 4, 8, 16 the cell
#              (k CoT samples weighted by the joint probe's scores or not, m programs of
#              pal1 or pal4, each weighing 0.5, 1 or 2) most accurate on train within CoT
#              majority-n's tokens, measured on the 100 test problems at matched tokens
#   gsm8k-policy-hybrid  ponder optimize with the hybrid votes in the menu (--hybrid 0.5 1
#              2: the probe-scored chains of the pilot run with pal1's or pal4's programs,
#              unweighted and weighted), pilot HYBRID_PILOT (1 or 2, chosen on train: the
#              one whose policy reaches train majority-16's accuracy with fewer tokens),
#              score signal, 3 bins, mean allocation, fitted on the 64 train problems and
#              measured on the 100 test problems (after gsm8k-policy and gsm8k-pal-banks)
#   gsm8k-hybrid  ponder bank hybrid: CoT + PAL votes on the 50 test problems of the PAL
#              bank (bench/banks/gsm8k-50-pal4.jsonl.gz), and the execution cross-check
#              against the greedy program (gsm8k-50-pal1) as a signal
#   gsm8k-deepconf  DeepConf online (warm-up 4, batches of 2, consensus 0.95, keep 0.9,
#              window 128), live on the first 50 test problems with --features --hidden, at the
#              bank's sampling settings, against its offline form replayed on the bank
#              (filter[lowest_group_128,0.9] and majority at the n of equal tokens and at 16,
#              paired: bench/matched_tokens.py)
#   math-select  ponder bank select on the MATH-500 bank at n = 4 and 8: the combined
#              verifier cross-fitted on the bank (5 folds by problem), and fitted on the
#              GSM8K train bank instead (does a verifier carry over to MATH?)
#   math-split   the search subset (the first SEARCH_EACH problems of each level, default
#              4: 20 problems) and the bank's other problems, each as a bank of its own
#              (ponder export --exclude); bank select on the subset with the verifier and
#              the joint probe fitted on the others: weighted best-of-N, the search rows'
#              comparison at matched tokens (and the step verifier they use)
#   math-search  beam search, DVTS, MCTS and lookahead (4 beams, width 2; MCTS 12
#              iterations of 3) on the search subset, each step scored by the probe fitted
#              on the other problems (--verifier hidden:PATH, SEARCH_VERIFIER to change);
#              then each against majority and weighted/best-of-n by the joint probe and the
#              combined verifier replayed on the subset at matched tokens (matched_tokens.py)
#   save       export the banks to bench/banks/ (JSON lines, gzip) to commit them; a new
#              machine imports them first and each goes on where it stopped.
# Resumable: rerun the same command after an interruption and it continues.
# Usage: bash bench/selection.sh [EACH] [MODEL]        STEPS="math-bank save"
# Settings: OUT (default runs/selection), MAX_TOKENS (512), DATA, KEEP, PONDER.
# Two queues at once on 2 cores: pin each to a core (the engine takes the threads its
# affinity allows; bench/core_split.py measured 1.13x the tokens/s of taking turns):
#   STEPS="math-bank save" taskset -c 0 bash bench/selection.sh
#   STEPS="gsm8k-judge gsm8k-pal-banks" taskset -c 1 bash bench/selection.sh
set -euo pipefail
EACH=${1:-20}
MODEL=${2:-qwen2.5-coder-1.5b}
DATA=${DATA:-../shared/data/math500/test.jsonl}
OUT=${OUT:-runs/selection}
MAX_TOKENS=${MAX_TOKENS:-512}
KEEP=${KEEP:-bench/banks}
STEPS=${STEPS:-math-bank save}
PONDER=${PONDER:-ponder}
mkdir -p "$OUT"
BANK_PREFIX=selection-
source "$(dirname "$0")/_banks.sh"
MATH=$OUT/math500-5x$EACH-maj8.db
# the GSM8K banks keep the names they were committed under (no prefix)
TEST=$OUT/gsm8k-test-maj16.db
TRAIN=$OUT/gsm8k-train-maj16.db
PAL=$OUT/gsm8k-50-pal4.db
PAL1=$OUT/gsm8k-50-pal1.db
DEEPCONF=$OUT/gsm8k-50-deepconf-online.db
SEARCH_EACH=${SEARCH_EACH:-4}
JUDGE_LIMIT=${JUDGE_LIMIT:-20}
HYBRID_PILOT=${HYBRID_PILOT:-1}
TRAIN_PAL1=$OUT/gsm8k-train-pal1.db
TRAIN_PAL4=$OUT/gsm8k-train-pal4.db
TEST_PAL1=$OUT/gsm8k-test-pal1.db
TEST_PAL4=$OUT/gsm8k-test-pal4.db
MATH_SEARCH=$OUT/math500-search-$SEARCH_EACH.db
MATH_REST=$OUT/math500-rest-$SEARCH_EACH.db
SEARCH_VERIFIER=${SEARCH_VERIFIER:-hidden:$OUT/probe-math-rest.json}
PYTHON=${PYTHON:-python}
plain() { local BANK_PREFIX=; "$@"; }
for step in $STEPS; do
    case $step in
    math-bank)
        restore "$MATH"
        $PONDER eval --task math500 --data "$DATA" --where level=1,2,3,4,5 --limit-each "$EACH" \
            --model "$MODEL" --max-tokens "$MAX_TOKENS" --seed 0 --features --hidden \
            --strategy majority --n 8 --temperature 0.7 --out "$MATH"
        # the problems drawn before --features --hidden existed get theirs by prefill
        $PONDER bank features "$MATH" --model "$MODEL" --hidden ;;
    gsm8k-features)
        plain restore "$TRAIN" "$TEST"
        $PONDER bank features "$TRAIN" --model "$MODEL" --hidden
        $PONDER bank features "$TEST" --model "$MODEL" --hidden ;;
    gsm8k-select)
        $PONDER bank select "$TEST" --train "$TRAIN" --json "$OUT/gsm8k-select.json" \
            --plot "$OUT/gsm8k-select.png" --save-verifier "$OUT/combined-gsm8k.json" \
            --save-probe "$OUT/probe-gsm8k.json" \
            | tee "$OUT/gsm8k-select.md" ;;
    gsm8k-tempered)
        $PONDER bank select "$TEST" --train "$TRAIN" --rules majority "weighted[joint]" \
            "weighted[joint,0.25]" "weighted[joint,0.5]" "weighted[joint,0.75]" \
            "weighted[joint,1.5]" "weighted[joint,2]" "weighted[combined,0.5]" \
            "weighted[combined]" --json "$OUT/gsm8k-tempered.json" \
            | tee "$OUT/gsm8k-tempered.md" ;;
    gsm8k-judge)
        plain restore "$TEST"
        for j in judge judge-step; do
            restore "$OUT/gsm8k-test-$JUDGE_LIMIT-$j.db"
            scorer=judge; [[ $j == judge-step ]] && scorer="judge:step,agg=min"
            $PONDER eval --task gsm8k --data ../shared/data/gsm8k/test.jsonl --limit "$JUDGE_LIMIT" \
                --model "$MODEL" --seed 0 --replay "$TEST" --strategy best_of_n --n 16 \
                --temperature 0.7 -o top_p=0.95 --scorer "$scorer" \
                --out "$OUT/gsm8k-test-$JUDGE_LIMIT-$j.db"
        done
        $PYTHON bench/judge_signal.py "$TEST" "$OUT/gsm8k-test-$JUDGE_LIMIT-judge.db" \
            "$OUT/gsm8k-test-$JUDGE_LIMIT-judge-step.db" --json "$OUT/gsm8k-judge.json" \
            | tee "$OUT/gsm8k-judge.md" ;;
    gsm8k-probe-curve)
        plain restore "$TRAIN" "$TEST"
        $PYTHON bench/probe_learning_curve.py "$TRAIN" "$TEST" --sizes 8 16 32 48 64 \
            --json "$OUT/probe-learning-curve.json" | tee "$OUT/probe-learning-curve.md" ;;
    gsm8k-stop)
        $PONDER bank stop "$TEST" --train "$TRAIN" --signals majority combined probe joint \
            --taus 0.6 0.7 0.8 0.9 1.0 --margins 0.5 0.7 0.9 1.2 1.5 2 3 --min-samples 1 2 3 \
            --give-up 0 0.3 --orderings 100 \
            --json "$OUT/gsm8k-stop.json" | tee "$OUT/gsm8k-stop.md" ;;
    gsm8k-policy)
        budgets=700,1000,1400,1800,2200,2600,3000,3600,4200,5200
        policy=(--pilot 2 --bins 3 --allocate mean --heldout 0 --budgets "$budgets")
        $PONDER optimize "$TRAIN" "${policy[@]}" --test "$TEST" \
            --out "$OUT/policy-agreement.json" | tee "$OUT/gsm8k-policy-agreement.txt"
        rm -f "$OUT/train-scored.db" "$OUT/test-scored.db"
        $PONDER bank score "$TRAIN" --verifier "$OUT/combined-gsm8k.json" --cross-fit \
            --out "$OUT/train-scored.db"
        $PONDER bank score "$TEST" --verifier "$OUT/combined-gsm8k.json" \
            --out "$OUT/test-scored.db"
        $PONDER optimize "$OUT/train-scored.db" "${policy[@]}" --signal score \
            --test "$OUT/test-scored.db" --out "$OUT/policy-score.json" \
            | tee "$OUT/gsm8k-policy-score.txt"
        rm -f "$OUT/train-probed.db" "$OUT/test-probed.db"
        $PONDER bank score "$TRAIN" --verifier "$OUT/probe-gsm8k.json" --cross-fit \
            --out "$OUT/train-probed.db"
        $PONDER bank score "$TEST" --verifier "$OUT/probe-gsm8k.json" \
            --out "$OUT/test-probed.db"
        $PONDER optimize "$OUT/train-probed.db" "${policy[@]}" --signal score \
            --test "$OUT/test-probed.db" --out "$OUT/policy-probe.json" \
            | tee "$OUT/gsm8k-policy-probe.txt" ;;
    gsm8k-pal-banks)
        # the 50-problem PAL banks of bench/gsm8k_efficient.sh seed the 100-problem ones
        restore "$TEST_PAL1" "$TEST_PAL4" "$TRAIN_PAL1" "$TRAIN_PAL4"
        [[ -f $TEST_PAL1 ]] || $PONDER import "$KEEP/gsm8k-50-pal1.jsonl.gz" "$TEST_PAL1"
        [[ -f $TEST_PAL4 ]] || $PONDER import "$KEEP/gsm8k-50-pal4.jsonl.gz" "$TEST_PAL4"
        for split in train test; do
            if [[ $split == train ]]; then limit=64; one=$TRAIN_PAL1; four=$TRAIN_PAL4
            else limit=100; one=$TEST_PAL1; four=$TEST_PAL4; fi
            pal=(--task gsm8k --data "../shared/data/gsm8k/$split.jsonl" --limit "$limit"
                 --model "$MODEL" --max-tokens 400 --seed 0 --strategy pal)
            $PONDER eval "${pal[@]}" --n 1 --out "$one"
            $PONDER eval "${pal[@]}" --n 4 --temperature 0.7 --out "$four"
        done ;;
    gsm8k-policy-pal)
        # every configuration pays the 2-sample CoT pilot (about 720 tokens) first
        budgets=800,1000,1400,1800,2200,2600,3000,3600,4200,5200
        policy=(--pilot 2 --bins 3 --allocate mean --heldout 0 --budgets "$budgets"
                --stop-margins 0.5 0.7 1 1.5 2 3 --stop-shares 0.6 0.8 1.0 --stop-min-n 2 3
                --stop-give-up 0 0.3)
        $PONDER optimize "$TRAIN" "$TRAIN_PAL1" "$TRAIN_PAL4" "${policy[@]}" \
            --test "$TEST" "$TEST_PAL1" "$TEST_PAL4" --out "$OUT/policy-pal-agreement.json" \
            | tee "$OUT/gsm8k-policy-pal-agreement.txt"
        $PONDER optimize "$OUT/train-probed.db" "$TRAIN_PAL1" "$TRAIN_PAL4" "${policy[@]}" \
            --signal score --test "$OUT/test-probed.db" "$TEST_PAL1" "$TEST_PAL4" \
            --out "$OUT/policy-pal-probe.json" | tee "$OUT/gsm8k-policy-pal-probe.txt" ;;
    gsm8k-policy-stops)
        budgets=700,1000,1400,1800,2200,2600,3000,3600,4200,5200
        policy=(--pilot 2 --bins 3 --allocate mean --heldout 0 --budgets "$budgets"
                --stop-margins 0.5 0.7 1 1.5 2 3 --stop-shares 0.6 0.8 1.0 --stop-min-n 2 3
                --stop-give-up 0 0.3)
        $PONDER optimize "$TRAIN" "${policy[@]}" --test "$TEST" \
            --out "$OUT/policy-stops-agreement.json" | tee "$OUT/gsm8k-policy-stops-agreement.txt"
        $PONDER optimize "$OUT/train-scored.db" "${policy[@]}" --signal score \
            --test "$OUT/test-scored.db" --out "$OUT/policy-stops-score.json" \
            | tee "$OUT/gsm8k-policy-stops-score.txt"
        $PONDER optimize "$OUT/train-probed.db" "${policy[@]}" --signal score \
            --test "$OUT/test-probed.db" --out "$OUT/policy-stops-probe.json" \
            | tee "$OUT/gsm8k-policy-stops-probe.txt" ;;
    gsm8k-hybrid-chosen)
        $PYTHON bench/hybrid_choice.py "$OUT/train-probed.db" "$OUT/test-probed.db" \
            --pal pal1 "$TRAIN_PAL1" "$TEST_PAL1" --pal pal4 "$TRAIN_PAL4" "$TEST_PAL4" \
            --pal-weights 0.5 1 2 --json "$OUT/gsm8k-hybrid-chosen.json" \
            | tee "$OUT/gsm8k-hybrid-chosen.md" ;;
    gsm8k-policy-hybrid)
        budgets=400,500,600,700,800,900,1000,1200,1400,1800,2200,2600,3000,3600,4200,5200
        $PONDER optimize "$OUT/train-probed.db" "$TRAIN_PAL1" "$TRAIN_PAL4" --pilot "$HYBRID_PILOT" \
            --bins 3 --allocate mean --heldout 0 --budgets "$budgets" --signal score \
            --hybrid 0.5 1 2 --test "$OUT/test-probed.db" "$TEST_PAL1" "$TEST_PAL4" \
            --out "$OUT/policy-hybrid.json" | tee "$OUT/gsm8k-policy-hybrid.txt" ;;
    gsm8k-hybrid)
        plain restore "$PAL" "$PAL1"
        $PONDER bank hybrid "$TEST" "$PAL" --program "$PAL1" --json "$OUT/gsm8k-hybrid.json" \
            | tee "$OUT/gsm8k-hybrid.md" ;;
    gsm8k-deepconf)
        restore "$DEEPCONF"
        $PONDER eval --task gsm8k --data ../shared/data/gsm8k/test.jsonl --limit 50 \
            --model "$MODEL" --seed 0 --max-tokens 400 --features --hidden --strategy deepconf \
            -o online=true -o max_n=16 -o warmup=4 -o batch=2 -o consensus=0.95 \
            -o keep=0.9 -o window=128 -o temperature=0.7 -o top_p=0.95 --out "$DEEPCONF"
        plain restore "$TEST"
        $PYTHON bench/matched_tokens.py "$TEST" "$DEEPCONF" --json "$OUT/gsm8k-deepconf.json" \
            --rules majority "filter[lowest_group_128,0.9]" | tee "$OUT/gsm8k-deepconf.md" ;;
    math-select)
        $PONDER bank select "$MATH" --json "$OUT/math-select.json" \
            --plot "$OUT/math-select.png" | tee "$OUT/math-select.md"
        plain restore "$TRAIN"
        $PONDER bank select "$MATH" --train "$TRAIN" --json "$OUT/math-select-gsm8k.json" \
            | tee "$OUT/math-select-gsm8k.md" ;;
    math-split)
        picked=(math500 --data "$DATA" --where level=1,2,3,4,5)
        $PYTHON bench/problem_ids.py "${picked[@]}" --limit-each "$SEARCH_EACH" \
            > "$OUT/math-search-ids.txt"
        $PYTHON bench/problem_ids.py "${picked[@]}" --limit-each "$EACH" \
            | grep -vxFf "$OUT/math-search-ids.txt" > "$OUT/math-rest-ids.txt"
        rm -f "$MATH_SEARCH" "$MATH_REST"
        $PONDER export "$MATH" "$OUT/math-search.jsonl.gz" --exclude "$OUT/math-rest-ids.txt"
        $PONDER import "$OUT/math-search.jsonl.gz" "$MATH_SEARCH"
        $PONDER export "$MATH" "$OUT/math-rest.jsonl.gz" --exclude "$OUT/math-search-ids.txt"
        $PONDER import "$OUT/math-rest.jsonl.gz" "$MATH_REST"
        $PONDER bank select "$MATH_SEARCH" --train "$MATH_REST" \
            --json "$OUT/math-search-select.json" --save-verifier "$OUT/combined-math-rest.json" \
            --save-probe "$OUT/probe-math-rest.json" | tee "$OUT/math-search-select.md" ;;
    math-search)
        search=(--task math500 --data "$DATA" --where level=1,2,3,4,5
                --limit-each "$SEARCH_EACH" --model "$MODEL" --max-tokens "$MAX_TOKENS" --seed 0
                --verifier "$SEARCH_VERIFIER" --temperature 0.7)
        for s in beam_search dvts mcts lookahead; do
            db=$OUT/math500-search-$SEARCH_EACH-$s.db
            restore "$db"
            case $s in
            mcts) shape=(-o iterations=12 --width 3) ;;
            *) shape=(--n 4 --width 2) ;;
            esac
            $PONDER eval "${search[@]}" --strategy "$s" "${shape[@]}" --out "$db"
        done
        $PYTHON bench/matched_tokens.py "$MATH_SEARCH" "$OUT"/math500-search-"$SEARCH_EACH"-*.db \
            --train "$MATH_REST" --json "$OUT/math-search.json" \
            --rules majority "weighted[joint]" "best_of_n[joint]" "weighted[combined]" \
            | tee "$OUT/math-search.md" ;;
    save)
        save "$MATH" "$DEEPCONF" "$OUT/gsm8k-test-$JUDGE_LIMIT-judge.db" \
            "$OUT/gsm8k-test-$JUDGE_LIMIT-judge-step.db" "$TRAIN_PAL1" "$TRAIN_PAL4" \
            "$TEST_PAL1" "$TEST_PAL4"
        for s in beam_search dvts mcts lookahead; do
            save "$OUT/math500-search-$SEARCH_EACH-$s.db"
        done
        plain save "$TRAIN" "$TEST" ;;
    *) echo "unknown step $step" >&2; exit 2 ;;
    esac
done
