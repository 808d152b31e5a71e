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

reproduce: $(STAMP)
	@echo "make reproduce: run_experiments.py does not exist yet (the trainers and reproduce issues build it)" >&2; exit 1

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis
