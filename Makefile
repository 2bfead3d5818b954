# dawm: two entry points for a fresh machine (only Python needed).
#   make demo  -> sets up .venv and runs the pipeline on the embedded synthetic cohort
#   make test  -> sets up .venv (+ the BIDS validator, + headless Chromium) and runs the test suite
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
TOOLS := .tools
VALIDATOR := $(TOOLS)/node_modules/.bin/bids-validator

.PHONY: demo test lint venv validator chromium bench clean

# pyproject.toml declares ranges (torch>=2.3,<3); constraints.txt pins what make test / CI install (torch 2.13.0).
$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[test]'
	touch $(STAMP)

venv: $(STAMP)

# The BIDS validator (npm package, 1.15.x runs offline); needs node/npm, which make test installs if absent.
$(VALIDATOR):
	@command -v npm >/dev/null 2>&1 || (apt-get update -qq && apt-get install -y -qq nodejs npm >/dev/null)
	npm install --silent --prefix $(TOOLS) --no-audit --no-fund bids-validator@1.15.0

validator: $(VALIDATOR)

# Headless Chromium checks the HTML report (tests/evaluate/test_report_html.py); installed with apt-get if absent.
chromium:
	@command -v chromium >/dev/null 2>&1 || (apt-get update -qq && apt-get install -y -qq chromium >/dev/null)

demo: $(STAMP)
	$(BIN)/dawm demo --output demo_output

# ruff (pyproject.toml [tool.ruff]; version pinned in constraints.txt): lint and format checks first.
lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

test: $(STAMP) $(VALIDATOR) chromium lint
	DAWM_BIDS_VALIDATOR=$(abspath $(VALIDATOR)) $(BIN)/python -m pytest -q

bench: $(STAMP)
	$(BIN)/python benchmarks/simulate_benchmark.py

clean:
	rm -rf $(VENV) $(TOOLS) demo_output .pytest_cache
