# Two set-up commands on a fresh machine (each creates .venv from requirements.lock when it is missing):
#   make smoke   the main job: the smoke DAG (every figure and table on tiny budgets, CPU)
#   make test    the test suite (unit, smoke tier, determinism/resume, workflow)
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: venv smoke estimate test lint format lock bench clean

$(STAMP): requirements.lock pyproject.toml
	@command -v $(PY) >/dev/null || { echo "error: $(PY) not found; install Python 3.11 or run 'make PY=/path/to/python3.11'"; exit 1; }
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements.lock
	$(BIN)/pip install --quiet --no-deps -e .
	touch $(STAMP)

venv: $(STAMP)

# The smoke DAG: every experiment and figure of config/smoke.yaml (tiny budgets, CPU), then its HTML report.
smoke: $(STAMP)
	$(BIN)/snakemake --profile workflow/profiles/local --configfile config/smoke.yaml
	$(BIN)/snakemake --configfile config/smoke.yaml --report results/report-smoke.html

# Compute estimate of the paper DAG (runs × steps ÷ stored throughput measurements), before anyone launches it.
estimate: $(STAMP)
	$(BIN)/neuroplastic estimate --configfile config/paper.yaml

test: $(STAMP)
	$(BIN)/python -m pytest -q -p no:cacheprovider -n auto --dist loadgroup --durations=25 tests

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: $(STAMP)
	$(BIN)/python benchmarks/throughput.py --agents td3 --repeats 3

# Re-resolve the lock from pyproject.toml in a throw-away venv.
lock:
	rm -rf .lockenv && $(PY) -m venv .lockenv
	.lockenv/bin/pip install --quiet -e '.[dev]'
	{ head -3 requirements.lock; .lockenv/bin/pip freeze --exclude-editable | sed -E 's/^torch==([0-9.]+)\+.*/torch==\1/'; } > requirements.lock.new
	mv requirements.lock.new requirements.lock && rm -rf .lockenv

clean:
	rm -rf results .snakemake paper_figures/smoke
