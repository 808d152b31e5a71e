# Two commands do everything on a fresh machine: `make reproduce` and `make test`.
# Both create .venv from requirements.txt on first use.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: test reproduce bench ablation venv clean

venv: $(STAMP)

$(STAMP): requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	touch $(STAMP)

test: $(STAMP)
	OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 $(PY) -m pytest

# make reproduce                 the quick preset, 5 seeds: about 12 minutes on 2 cores
# make reproduce PRESET=paper    the paper's settings (many hours on a CPU)
# make reproduce PRESET=lean     the same with 10 Langevin iterations per refresh (README)
PRESET ?= quick
SEEDS  ?= 5
JOBS   ?= $(shell nproc 2>/dev/null || echo 2)

reproduce: $(STAMP)
	$(PY) run_experiments.py reproduce --preset $(PRESET) --seeds $(SEEDS) --jobs $(JOBS) \
		--runs runs --out docs/results/$(PRESET)

# steps/s of each algorithm at the paper's sizes, with a per-phase breakdown, for the paper
# preset and the lean one (10 Langevin iterations per refresh): about 30 s on 2 cores
bench: $(STAMP)
	$(PY) run_experiments.py bench --out docs/results/bench
	$(PY) run_experiments.py bench --preset lean --out docs/results/bench/lean

# accuracy against Langevin iterations per refresh: B and M with the correction, quick preset,
# seeds 0-2, at equal steps (about 30 minutes on 2 cores)
ablation: $(STAMP)
	$(PY) run_experiments.py reproduce --preset quick --algos b,m --variants mf --seeds 3 \
		--set langevin_steps=5,10,20,50,200 --jobs $(JOBS) --runs runs --out docs/results/langevin

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis
