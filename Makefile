# modeldiff — set-up and everyday targets. Each target installs what it needs into .venv first.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PIP := $(PY) -m pip install -q --disable-pip-version-check
# what kronfluence and bergson import (their declared requirements minus torchvision, torchaudio, bitsandbytes)
INFLUENCE_DEPS := einconv opt-einsum tqdm peft petname simple-parsing torchopt ml_dtypes natsort jinja2 pyyaml

.PHONY: install demo test test-browser test-slow bench lint clean

$(STAMP): pyproject.toml constraints-cpu.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) -c constraints-cpu.txt -e '.[dev,interpret]'
	# the influence extra (Kronfluence, Bergson) without torchvision / torchaudio: their PyPI wheels are CUDA-linked
	# and break `import transformers` beside CPU torch, and neither library imports them on the paths we use. Their
	# other requirements first; then the two libraries alone, without pip's (expected) note on the three left out
	$(PIP) -c constraints-cpu.txt $(INFLUENCE_DEPS)
	$(PIP) -c constraints-cpu.txt --no-deps --no-warn-conflicts kronfluence bergson
	touch $(STAMP)

install: $(STAMP)

## Run the main job (mine) on the built-in `cake` organism and print the top promoted tokens.
demo: $(STAMP)
	$(VENV)/bin/modeldiff organism build cake
	$(VENV)/bin/modeldiff mine --top-k 20 --out runs/demo

## The test suite (about 3 minutes of pytest on 2 cores; the 15 slowest tests listed): one pytest-xdist worker per core,
## one torch thread each; each module runs whole on one worker (its module fixtures computed once), slow modules
## first (tests/conftest.py).
test: $(STAMP)
	$(PY) -m pytest -q -n 2 --dist loadfile --no-loadscope-reorder --durations=15

## Only the browser tests of `modeldiff report` (headless Chromium and Firefox: apt-get install -y chromium firefox-esr).
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
