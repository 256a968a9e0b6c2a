# modeldiff — set-up and everyday targets. Each target installs what it needs into .venv first.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install demo test test-browser test-slow bench lint clean

$(STAMP): pyproject.toml constraints-cpu.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -c constraints-cpu.txt -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

## Run the main job (mine) on the built-in `cake` organism and print the top promoted tokens.
demo: $(STAMP)
	$(VENV)/bin/modeldiff organism build cake
	$(VENV)/bin/modeldiff mine --top-k 20 --out runs/demo

## The test suite (minutes on 2 cores).
test: $(STAMP)
	$(PY) -m pytest -q

## Only the browser tests of `modeldiff report` (headless Chromium: apt-get install -y chromium).
test-browser: $(STAMP)
	$(PY) -m pytest -q -rs -m browser tests/test_report_browser.py

## Heavier checks (real hops data, larger shapes).
test-slow: $(STAMP)
	$(PY) -m pytest -q -rs -m slow

bench: $(STAMP)
	$(PY) benchmarks/mine_overhead.py

lint: $(STAMP)
	$(VENV)/bin/ruff check .

clean:
	rm -rf $(VENV) runs .pytest_cache
