# memsvc developer commands. `make demo` and `make test` work on a fresh machine: each creates the
# virtual environment it needs (torch is installed first and alone: the local CPU wheel).
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip -q --disable-pip-version-check
export HF_HUB_OFFLINE := 1
export HF_HUB_DISABLE_PROGRESS_BARS := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: install demo test test-all lint bench-locomo bench-longmemeval bench-latency

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PIP) install --upgrade pip
	$(PIP) install torch==2.13.0
	$(PIP) install -e '.[dev]'
	touch $@

install: $(VENV)/.installed

demo: install
	$(VENV)/bin/memsvc demo

test: install
	$(PY) -m pytest -q -p no:cacheprovider $(PYTEST_ARGS)

test-all: install
	$(PY) -m pytest -q -p no:cacheprovider -m "" $(PYTEST_ARGS)

lint: install
	$(VENV)/bin/ruff check memsvc stores segmenters compressors gpu benchmarks tests

# Benchmarks (results: JSON on stdout and in benchmarks/results/; see docs/BENCHMARKS.md).
LOCOMO ?= ../shared/data/locomo/locomo_dev.json
LONGMEMEVAL ?= ../shared/data/longmemeval/longmemeval_s_dev100.json.gz
N ?= 100000

bench-locomo: install
	$(VENV)/bin/memsvc bench locomo --data $(LOCOMO)

bench-longmemeval: install
	$(VENV)/bin/memsvc bench longmemeval --data $(LONGMEMEVAL) --step 4

bench-latency: install
	$(VENV)/bin/memsvc bench latency --n $(N)
