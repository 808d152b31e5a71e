# Two commands do everything on a fresh machine: `make reproduce` and `make test`.
# Both create .venv from requirements.txt on first use.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: test reproduce venv clean

venv: $(STAMP)

$(STAMP): requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	touch $(STAMP)

test: $(STAMP)
	$(PY) -m pytest

# make reproduce                 the quick preset, 5 seeds: about 6 minutes on 2 cores
# make reproduce PRESET=paper    the paper's settings (many hours on a CPU)
PRESET ?= quick
SEEDS  ?= 5
JOBS   ?= $(shell nproc 2>/dev/null || echo 2)

reproduce: $(STAMP)
	$(PY) run_experiments.py reproduce --preset $(PRESET) --seeds $(SEEDS) --jobs $(JOBS) \
		--runs runs --out docs/results/$(PRESET)

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis
