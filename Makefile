# Two commands do everything on a fresh machine: `make reproduce` and `make test`.
# Both create .venv from requirements.txt on first use.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: test reproduce reports bench ablation robust-study robust-paper-scale steady-study single-study single-checkpoint single-bound dims-study venv clean gpu-check

venv: $(STAMP)

$(STAMP): requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	touch $(STAMP)

# The suite as two pytest processes, one per core: the tests that retrain committed runs
# (tests/test_steady.py and tests/test_mf_correction.py share those runs, so they stay in one
# process; tests/test_single.py retrains the last quarter of an AC run, about 3 minutes)
# beside all the others. The first one's report is printed after the second's; the
# target fails if either fails; Ctrl-C stops both. `$(PY) -m pytest` runs the same tests in
# one process.
RETRAIN_TESTS := tests/test_steady.py tests/test_mf_correction.py tests/test_single.py
TEST_ENV      := OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1
test: $(STAMP)
	@log=$$(mktemp); trap 'kill $$retrain 2>/dev/null; rm -f $$log; exit 130' INT TERM; \
	$(TEST_ENV) $(PY) -m pytest -p no:cacheprovider $(RETRAIN_TESTS) > $$log 2>&1 & retrain=$$!; \
	$(TEST_ENV) $(PY) -m pytest $(addprefix --ignore=,$(RETRAIN_TESTS)); rest=$$?; \
	wait $$retrain; first=$$?; \
	echo "--- $(RETRAIN_TESTS):"; cat $$log; rm -f $$log; \
	test $$rest -eq 0 && test $$first -eq 0

# make reproduce                 the quick preset, 5 seeds: about 7 minutes on 2 cores
# make reproduce PRESET=paper    the paper's settings (many hours on a CPU)
# make reproduce PRESET=lean     the same with 10 Langevin iterations per refresh (README)
PRESET ?= quick
SEEDS  ?= 5
JOBS   ?= $(shell nproc 2>/dev/null || echo 2)

reproduce: $(STAMP)
	$(PY) run_experiments.py reproduce --preset $(PRESET) --seeds $(SEEDS) --jobs $(JOBS) \
		--runs runs --out docs/results/$(PRESET)

# every committed report again from the runs it keeps (docs/results/**/runs.zip), in place: after
# a change to `report`. The runs are not retrained, so nothing but the report's own output
# can change, each with the figures it drew (those a page shows). About a minute on one core.
REPORT_DIRS = $(patsubst %/runs.zip,%,$(wildcard docs/results/*/runs.zip docs/results/*/*/runs.zip))
reports: $(STAMP)
	$(PY) run_experiments.py report --again $(REPORT_DIRS)

# steps/s of each algorithm, with a per-phase breakdown, for the paper preset, the lean one
# (10 Langevin iterations per refresh) and the quick one, on this machine's device (the GPU
# when CuPy sees one): docs/results/bench/DEVICE/PRESET/. About 2 minutes on 2 cores.
bench: $(STAMP)
	$(PY) run_experiments.py bench --preset paper --out docs/results/bench --replace
	$(PY) run_experiments.py bench --preset lean --out docs/results/bench --replace
	$(PY) run_experiments.py bench --preset quick --out docs/results/bench --replace

# accuracy against Langevin iterations per refresh: B and M with the correction, quick preset,
# seeds 0-2, at equal steps (about 30 minutes on 2 cores)
ablation: $(STAMP)
	$(PY) run_experiments.py reproduce --preset quick --algos b,m --variants mf --seeds 3 \
		--set langevin_steps=5,10,20,50,200 --jobs $(JOBS) --runs runs --out docs/results/langevin

# the robust preset's study (docs/robust.md): seeds 0-9 of B, M and DRL in both variants, then
# the ablations, each the robust preset with one change undone (RUNS/robust/*, reports in
# RUNS/report-*). Resumable: run it again and finished runs are reused. Hours on 2 cores.
ROBUST = $(PY) run_experiments.py reproduce --preset robust --jobs $(JOBS)
REPORT = $(PY) run_experiments.py report

robust-study: $(STAMP)
	$(ROBUST) --algos b,m,drl,ac --seeds 10 --runs runs --out runs/report-robust
	$(ROBUST) --algos drl --variants mf --seeds 5 --set ppo_epochs=1 --set ppo_minibatches=1 \
		--set adv_norm=false --runs runs --out runs/report-drl-a4
	for s in adv_norm=false gae_lambda=0.0,1.0 ent_coef=0.0 ppo_clip=0.0 rollout=256 score_warmup=0; do \
		$(ROBUST) --algos drl --variants mf --seeds 5 --set $$s \
			--runs runs --out runs/report-drl-$$(echo $$s | tr '=,.' '---') || exit 1; done
	$(REPORT) runs/robust/drl+mf-s[0-4] runs/robust/drl+mf_ppo_epochs-*-s[0-4] runs/robust/drl+mf_adv_norm-*-s[0-4] \
		runs/robust/drl+mf_gae_lambda-*-s[0-4] runs/robust/drl+mf_ent_coef-*-s[0-4] runs/robust/drl+mf_ppo_clip-*-s[0-4] \
		runs/robust/drl+mf_rollout-*-s[0-4] runs/robust/drl+mf_score_warmup-*-s[0-4] --out docs/results/drl-ablation
	$(REPORT) runs/robust/drl+mf-s[0-4] runs/robust/drl+mf_score_warmup-0-s[0-4] \
		--out docs/results/robust-ablations/warm-start-drl
	$(ROBUST) --algos b,m --variants plain --seeds 5 --set lr_peak=3.0 --runs runs --out runs/report-peak3-plain
	$(REPORT) runs/robust/b_lr_peak-3.0-s? runs/robust/m_lr_peak-3.0-s? runs/robust/b-s[0-4] \
		runs/robust/m-s[0-4] --out docs/results/robust-ablations/lr-peak-3
	$(ROBUST) --algos b,m --seeds 3 --set target_every=200 --runs runs --out runs/report-abl-target
	$(ROBUST) --algos b,m --seeds 3 --set std_floor=1e-5 --runs runs --out runs/report-abl-floor
	$(ROBUST) --algos b --variants plain --seeds 5 --set lr_final=0.05 --runs runs --out runs/report-final-plain
	$(ROBUST) --algos b,drl --variants mf --seeds 2 --set lr_final=0.05 --runs runs --out runs/report-final-mf
	$(REPORT) runs/robust/*_lr_final-0.05-s? runs/robust/b-s[0-4] runs/robust/b+mf-s[01] \
		runs/robust/drl+mf-s[01] --out docs/results/robust-ablations/lr-final-0.05
	$(ROBUST) --algos drl --variants plain --seeds 5 --steps 12000 --runs runs/long --out runs/report-drl-12k
	$(ROBUST) --algos drl --variants mf --seeds 5 --set rollout=256 --steps 48000 --runs runs/long \
		--out runs/report-drl-rollout-equal-updates
	$(REPORT) runs/robust/drl+mf-s[0-4] runs/long/robust/drl+mf_rollout-256-s? \
		--out docs/results/drl-ablation-rollout-equal-updates
	$(ROBUST) --algos b --variants mf --seeds 3 --set lr_critic=0.001 --runs runs --out runs/report-critic10
	$(REPORT) runs/robust/b+mf-s[012] runs/robust/b+mf_lr_critic-0.001-s? \
		--out docs/results/robust-ablations/critic-rate-10x-actor
	$(ROBUST) --algos ac --seeds 5 --set lr_peak=1.0 --set lr_final=1.0 --runs runs --out runs/report-ac-flat
	$(REPORT) runs/robust/ac-s[0-4] runs/robust/ac+mf-s[0-4] runs/robust/ac*_lr_peak-1.0_lr_final-1.0-s? \
		--out docs/results/robust-ablations/ac-flat-rate
	$(ROBUST) --algos b,m,drl --seeds 10 --set antithetic=true --runs runs --out runs/report-antithetic
	$(ROBUST) --algos b,m --variants plain --seeds 10 --set antithetic=true --set eps_langevin=0.0125 \
		--runs runs --out runs/report-antithetic-eps
	$(ROBUST) --algos b --variants mf --seeds 10 --set antithetic=true --set eps_langevin=0.0125 \
		--runs runs --out runs/report-antithetic-eps-mf-b
	$(ROBUST) --algos m --variants mf --seeds 10 --set antithetic=true --set eps_langevin=0.0125 \
		--runs runs --out runs/report-antithetic-eps-mf-m
	$(ROBUST) --algos drl --variants mf --seeds 3 --set antithetic=true --set eps_langevin=0.0125 \
		--runs runs --out runs/report-antithetic-eps-mf
	$(REPORT) runs/robust/b-s? runs/robust/b_antithetic-True-s? runs/robust/b+mf-s? runs/robust/b+mf_antithetic-True-s? \
		runs/robust/m-s? runs/robust/m_antithetic-True-s? runs/robust/m+mf-s? runs/robust/m+mf_antithetic-True-s? \
		runs/robust/drl-s? runs/robust/drl_antithetic-True-s? runs/robust/drl+mf-s? \
		runs/robust/drl+mf_antithetic-True-s? runs/robust/b_eps_langevin-0.0125_antithetic-True-s? \
		runs/robust/m_eps_langevin-0.0125_antithetic-True-s? runs/robust/*+mf_eps_langevin-0.0125_antithetic-True-s? \
		--out docs/results/robust-antithetic
	$(ROBUST) --algos drl --variants plain --seeds 10 --set antithetic=true --set eps_langevin=0.0125 \
		--steps 12000 --runs runs/long --out runs/report-antithetic-eps-drl-12k
	$(REPORT) runs/long/robust/drl-s? runs/long/robust/drl_eps_langevin-0.0125_antithetic-True-s? \
		--out docs/results/robust-ablations/drl-plain-12k-antithetic-eps

# the robust preset at the paper's scale, 8,192 agents (M: minibatches of 1,024), seeds 0-4:
# B, M and DRL, both variants (RUNS/paper-scale/robust/*); then the corrected learners on the
# check seeds 5-9. About a quarter of an hour a run on 2 cores.
robust-paper-scale: $(STAMP)
	$(ROBUST) --algos b --seeds 5 --set batch=8192 --runs runs/paper-scale --out runs/report-ps-b
	$(ROBUST) --algos m --seeds 5 --set batch=8192 --set minibatch=1024 --runs runs/paper-scale --out runs/report-ps-m
	$(ROBUST) --algos drl --seeds 5 --set batch=8192 --runs runs/paper-scale --out runs/report-ps-drl
	$(ROBUST) --algos b,drl --variants mf --seeds 10 --set batch=8192 --runs runs/paper-scale --out runs/report-ps-check
	$(ROBUST) --algos m --variants mf --seeds 10 --set batch=8192 --set minibatch=1024 --runs runs/paper-scale \
		--out runs/report-ps-check-m
	$(REPORT) runs/paper-scale/robust/b+mf_batch-8192-s[5-9] runs/paper-scale/robust/drl+mf_batch-8192-s[5-9] \
		runs/paper-scale/robust/m+mf_batch-8192_minibatch-1024-s[5-9] runs/robust/b+mf-s[5-9] \
		runs/robust/m+mf-s[5-9] runs/robust/drl+mf-s[5-9] --out docs/results/robust-paper-scale-check-seeds

# the steady preset's study (docs/robust.md): seeds 0-9 at 1,024 agents, the report that
# `make reproduce PRESET=steady SEEDS=10` makes too; then each of its changes undone alone
# (seeds 0-9; B's and M's runs with the paper's step are robust-study's
# antithetic ones), M with 10 Langevin iterations per refresh instead of 40 (seeds 0-9); then
# the paper's scale, 8,192 agents, seeds 0-9 (plain DRL: 0-4). Hours on 2 cores;
# resumable like the others.
STEADY = $(PY) run_experiments.py reproduce --preset steady --jobs $(JOBS)
steady-study: $(STAMP)
	$(STEADY) --algos b,m,drl,ac --seeds 10 --runs runs --out docs/results/steady
	$(STEADY) --algos b,m --seeds 10 --set antithetic=false --runs runs --out runs/report-steady-bm-noanti
	$(STEADY) --algos drl --variants plain --seeds 10 --set antithetic=false --runs runs --out runs/report-steady-drl-noanti
	$(STEADY) --algos drl --variants plain --seeds 10 --set eps_langevin=0.05 --runs runs --out runs/report-steady-drl-eps05
	$(STEADY) --algos drl --variants mf --seeds 10 --set antithetic=false --runs runs --out runs/report-steady-drlmf-noanti
	$(STEADY) --algos drl --variants mf --seeds 10 --set eps_langevin=0.05 --runs runs --out runs/report-steady-drlmf-eps05
	$(STEADY) --algos drl --variants plain --seeds 5 --steps 6000 --runs runs/short --out runs/report-steady-drl-6k
	$(REPORT) runs/steady/b-s? runs/steady/b+mf-s? runs/steady/m-s? runs/steady/m+mf-s? \
		runs/steady/drl-s? runs/steady/drl+mf-s? runs/steady/*_antithetic-False-s? \
		runs/steady/drl*_eps_langevin-0.05-s? runs/robust/b_antithetic-True-s? \
		runs/robust/b+mf_antithetic-True-s? runs/robust/m_antithetic-True-s? \
		runs/robust/m+mf_antithetic-True-s? runs/robust/drl+mf_antithetic-True-s? \
		--allow-mixed-presets --out docs/results/steady-ablations/one-change-undone
	$(REPORT) runs/short/steady/drl-s? runs/robust/drl+mf_eps_langevin-0.0125_antithetic-True-s? \
		--allow-mixed-presets --out docs/results/steady-ablations/drl-6000-steps
	$(STEADY) --algos m --seeds 10 --set langevin_steps=10 --runs runs --out runs/report-steady-m-langevin10
	$(STEADY) --algos m --seeds 5 --set antithetic=false --set langevin_steps=10 --runs runs \
		--out runs/report-steady-m-noanti-langevin10
	$(REPORT) runs/steady/m-s? runs/steady/m+mf-s? runs/steady/m_langevin_steps-10-s? \
		runs/steady/m+mf_langevin_steps-10-s? runs/steady/m_antithetic-False_langevin_steps-10-s? \
		runs/steady/m+mf_antithetic-False_langevin_steps-10-s? --out docs/results/steady-ablations/m-langevin-steps-10
	$(STEADY) --algos b --seeds 10 --set batch=8192 --runs runs/paper-scale --out runs/report-steady-ps-b
	$(STEADY) --algos drl --seeds 5 --set batch=8192 --runs runs/paper-scale --out runs/report-steady-ps-drl
	$(STEADY) --algos drl --variants mf --seeds 10 --set batch=8192 --runs runs/paper-scale \
		--out runs/report-steady-ps-drl-mf
	$(STEADY) --algos m --seeds 10 --set batch=8192 --set minibatch=1024 --runs runs/paper-scale \
		--out runs/report-steady-ps-m
	$(STEADY) --algos m --variants plain --seeds 5 --set batch=8192 --set minibatch=1024 \
		--set langevin_steps=10 --runs runs/paper-scale --out runs/report-steady-ps-m-langevin10
	$(REPORT) runs/paper-scale/steady/*-s? --out docs/results/steady-paper-scale

# the single preset's study (docs/single-agent.md): AC alone, 200,000 steps a run: AC+mf on
# seeds 0-9, plain AC on 0-9; on AC+mf, the control variate and the restarts undone on seeds 0-4,
# the local score's rate on 0-2, the policy-std floor and the schedule on 0-4; AC+mf at d = 2 (about 13 minutes
# a run, two at a time on 2 cores: about 4 hours); then the reports. The score networks' memory (docs/results/single-memory,
# 15 minutes): run_experiments.py memory --preset single --out DIR, into a new DIR.
SINGLE = $(PY) run_experiments.py reproduce --preset single --algos ac --jobs $(JOBS)
single-study: $(STAMP)
	$(SINGLE) --variants mf --seeds 10 --runs runs --out runs/report-single-mf
	$(SINGLE) --variants plain --seeds 10 --runs runs --out runs/report-single-plain
	$(SINGLE) --variants mf --seeds 5 --set td_control_variate=false --runs runs --out runs/report-single-abl
	$(SINGLE) --variants mf --seeds 5 --set restart_beyond=0 --runs runs --out runs/report-single-abl-restart
	$(SINGLE) --variants mf --seeds 3 --set lr_local=0.005 --runs runs --out runs/report-single-abl-local
	$(SINGLE) --variants mf --seeds 5 --set std_floor=1e-5 --runs runs --out runs/report-single-abl-floor
	$(SINGLE) --variants mf --seeds 5 --set lr_peak=10 --set lr_final=0.25 --runs runs --out runs/report-single-abl-sched
	$(SINGLE) --variants mf --seeds 2 --dim 2 --runs runs --out docs/results/single-d2 --figures none
	$(REPORT) runs/single/ac-s? runs/single/ac+mf-s? --out docs/results/single
	$(REPORT) runs/single/ac+mf_td_control_variate-False-s? --out docs/results/single-ablations/td-control-variate
	$(REPORT) runs/single/ac+mf_restart_beyond-0.0-s? --out docs/results/single-ablations/restart-beyond
	$(REPORT) runs/single/ac+mf_lr_local-0.005-s? --out docs/results/single-ablations/lr-local
	$(REPORT) runs/single/ac+mf_std_floor-1e-05-s? --out docs/results/single-ablations/std-floor
	$(REPORT) runs/single/ac+mf_lr_peak-10.0_lr_final-0.25-s? --out docs/results/single-ablations/schedule

# the checkpoint at step 150,000 of AC+mf seed 1 that tests/test_single.py resumes: after
# single-study on another machine (the test then says the checkpoint is not the report's run)
single-checkpoint: $(STAMP)
	$(PY) run_experiments.py run --algo ac --preset single --mf --seed 1 --stop-after 150000 \
		--out runs/single-checkpoint/ac+mf-s1
	mkdir -p docs/results/single/checkpoints
	cp runs/single-checkpoint/ac+mf-s1/checkpoint.npz docs/results/single/checkpoints/ac+mf-s1-150000.npz

# the ideal single agent's rate of success by memory and steps (docs/single-agent.md): about 13 minutes
single-bound: $(STAMP)
	mkdir -p docs/results/single-bound
	PYTHONPATH=. $(PY) tests/lq_linear_learner.py > docs/results/single-bound/BOUND.md.tmp
	mv docs/results/single-bound/BOUND.md.tmp docs/results/single-bound/BOUND.md

# the dims preset's study (docs/dimensions.md): B, M and DRL in d = 2, 4 and 8 (both variants),
# B in 16, 32 and 64, all three rotated at 8 (DRL also with the TD control variate, and at 16 with
# walls too), each change undone at d = 8; B at 8,192 agents at d = 8 and 16; at d = 16 and rotated the TD
# target's control variate or the critic's rate x2, with 4,000 evaluation chains, and at d = 16
# Hutchinson's trace; at d = 32 and 64 walls at ±4 and a slower local score, each undone at 32,
# and at 32 and 64 the walls with antithetic agents (pairs restart together); at 64 and 100, 40,000 steps
# and networks 2d wide (hidden_per_dim); the plain variants at d = 8 and 16 with the local score
# slower (LOCAL), each change undone for M at d = 8, plain DRL at d = 16 over 30,000 steps; M and
# DRL (+mf) at d = 32 with B's walls (undone for M), M at 64 (also over 40,000 steps); at d = 16
# M+mf with the slower local score, plain B, M and M+mf over 30,000 steps, plain B at 8,192
# agents on seeds 0-4 and 6 (its two misses among them), and plain DRL rotated over 30,000
# steps; then the table over d. 2-20 minutes a run, two at a time on 2 cores; resumable like
# the others.
DIMS = $(PY) run_experiments.py reproduce --preset dims --jobs $(JOBS) --runs runs
DIMS16 = --dim 16 --set eval_chains=4000
DIMSLONG = $(PY) run_experiments.py reproduce --preset dims --jobs $(JOBS) --runs runs/long --steps 40000
DIMS30 = $(PY) run_experiments.py reproduce --preset dims --jobs $(JOBS) --runs runs/long30 --steps 30000
WALLS = --set td_control_variate=true --set eval_chains=4000 --set restart_beyond=4 --set lr_local=1e-4
LOCAL = --set td_control_variate=true --set eval_chains=4000 --set lr_local=1e-4
dims-study: $(STAMP)
	$(DIMS) --algos b --dim 8 --seeds 10 --out docs/results/dims-d8
	for d in 2 4; do $(DIMS) --algos b --dim $$d --seeds 10 --out docs/results/dims-d$$d || exit 1; done
	for d in 2 4; do $(DIMS) --algos m --dim $$d --seeds 10 --out docs/results/dims-d$$d-m || exit 1; done
	for d in 2 4; do $(DIMS) --algos m --variants plain --dim $$d --seeds 10 --set lr_local=1e-4 \
		--out docs/results/dims-d$$d-m-plain-local || exit 1; done
	$(DIMS) --algos drl --dim 2 --seeds 10 --out docs/results/dims-d2-drl
	$(DIMS) --algos drl --dim 2 --seeds 10 --set td_control_variate=true --out docs/results/dims-d2-drl-cv
	$(DIMS) --algos drl --dim 4 --out docs/results/dims-d4-drl
	$(DIMS) --algos drl --dim 4 --seeds 10 --set td_control_variate=true --out docs/results/dims-d4-drl-cv
	$(DIMS) --algos b --variants mf --dim 16 --out docs/results/dims-d16
	$(DIMS) --algos b --variants mf --dim 8 --rotated --out docs/results/dims-d8-rotated
	$(DIMS) --algos b --variants mf --dim 8 --rotated --seeds 10 --set td_control_variate=true --set eval_chains=4000 \
		--out runs/report-dims-rotated-cv
	$(DIMS) --algos b --variants mf --dim 8 --rotated --seeds 1 --set lr_critic=4e-4 --set eval_chains=4000 \
		--out runs/report-dims-rotated-x2
	$(REPORT) runs/dims/b+mf_d-8_rotated_td_control_variate-True_eval_chains-4000-s? \
		runs/dims/b+mf_d-8_rotated_lr_critic-0.0004_eval_chains-4000-s0 --out docs/results/dims-d8-rotated-cv
	$(DIMS) --algos b --variants plain --dim 8 --rotated --seeds 10 --set td_control_variate=true --set eval_chains=4000 \
		--out docs/results/dims-d8-rotated-plain
	$(DIMS) --algos m --dim 8 --rotated --seeds 10 --set td_control_variate=true --set eval_chains=4000 \
		--out docs/results/dims-d8-rotated-m
	$(DIMS) --algos drl --variants mf --dim 8 --rotated --set td_control_variate=true --set eval_chains=4000 \
		--out docs/results/dims-d8-rotated-drl
	$(DIMS) --algos drl --variants mf --dim 8 --rotated --seeds 10 --set td_control_variate=true --set eval_chains=4000 \
		--set restart_beyond=4 --out docs/results/dims-d8-rotated-drl-walls
	$(DIMS) --algos m --dim 8 --seeds 10 --out docs/results/dims-d8-m
	$(DIMS) --algos m --variants plain --dim 8 --seeds 10 --set eval_chains=4000 --out docs/results/dims-d8-m-chains
	$(DIMS) --algos m --variants plain --dim 8 --set td_control_variate=true --set eval_chains=4000 --out docs/results/dims-d8-m-plain-cv
	$(DIMS) --algos m --variants plain --dim 8 --set eval_chains=4000 --set lr_local=1e-4 --out docs/results/dims-d8-m-plain-local-only
	$(DIMS) --algos m --variants plain --dim 8 --seeds 10 $(LOCAL) --out docs/results/dims-d8-m-plain-local
	$(DIMS) --algos b --variants plain --dim 8 --seeds 10 $(LOCAL) --out docs/results/dims-d8-plain-local
	$(DIMS) --algos drl --variants plain --dim 8 --set td_control_variate=true --set lr_local=1e-4 --out docs/results/dims-d8-drl-plain-local
	$(DIMS) --algos drl --variants plain --dim 8 --seeds 10 --set td_control_variate=true --set lr_local=1e-4 \
		--set restart_beyond=4 --out docs/results/dims-d8-drl-plain-local-walls
	$(DIMS) --algos drl --variants plain --dim 8 --rotated --seeds 10 $(LOCAL) --set restart_beyond=4 \
		--out docs/results/dims-d8-rotated-drl-plain
	$(DIMS) --algos drl --variants mf --dim 8 --seeds 10 --out docs/results/dims-d8-drl
	$(DIMS) --algos drl --variants mf --dim 8 --seeds 10 --set td_control_variate=true --out docs/results/dims-d8-drl-cv
	$(DIMS) --algos drl --variants mf $(DIMS16) --seeds 3 --set td_control_variate=true --out docs/results/dims-d16-drl-cv
	$(DIMS) --algos drl --variants mf $(DIMS16) --seeds 10 --set td_control_variate=true --set restart_beyond=4 \
		--out docs/results/dims-d16-drl-walls
	$(DIMS) --algos drl --variants plain --dim 8 --seeds 10 --set td_control_variate=true --out docs/results/dims-d8-drl-plain-cv
	$(DIMS) --algos drl --variants plain --dim 8 --seeds 2,4,7,8 --set td_control_variate=true --set restart_beyond=4 \
		--out docs/results/dims-d8-drl-plain-walls
	$(DIMS) --algos b --variants mf --dim 8 --set batch=8192 --out docs/results/dims-d8-8192
	$(DIMS) --algos b --variants mf $(DIMS16) --set td_control_variate=true --set batch=8192 --out docs/results/dims-d16-8192
	$(DIMS) --algos b --variants mf $(DIMS16) --seeds 10 --set td_control_variate=true --out docs/results/dims-d16-cv
	$(DIMS) --algos b --variants mf $(DIMS16) --set lr_critic=4e-4 --out docs/results/dims-d16-critic-x2
	$(DIMS) --algos m --variants mf $(DIMS16) --seeds 10 --set td_control_variate=true --out docs/results/dims-d16-m
	$(DIMS) --algos b --variants plain $(DIMS16) --seeds 3 --set td_control_variate=true --out docs/results/dims-d16-plain
	$(DIMS) --algos b --variants plain $(DIMS16) --seeds 10 --set td_control_variate=true --set lr_local=1e-4 \
		--out docs/results/dims-d16-plain-local
	$(DIMS) --algos m --variants plain $(DIMS16) --seeds 2 --set td_control_variate=true --out docs/results/dims-d16-m-plain
	$(DIMS) --algos m --variants plain --dim 16 --seeds 10 $(LOCAL) --out docs/results/dims-d16-m-plain-local
	$(DIMS) --algos drl --variants plain --dim 16 $(LOCAL) --set restart_beyond=4 --out docs/results/dims-d16-drl-plain-local
	$(DIMS30) --algos drl --variants plain --dim 16 --seeds 10 $(LOCAL) --set restart_beyond=4 --out docs/results/dims-d16-drl-plain-30k
	$(DIMS30) --algos b --variants plain --dim 16 --seeds 4 $(LOCAL) --out docs/results/dims-d16-plain-30k
	$(DIMS30) --algos m --variants plain --dim 16 $(LOCAL) --out docs/results/dims-d16-m-plain-30k
	$(DIMS30) --algos m --variants mf $(DIMS16) --seeds 3 --set td_control_variate=true --out docs/results/dims-d16-m-30k
	$(DIMS) --algos m --variants mf --dim 16 --seeds 10 $(LOCAL) --out docs/results/dims-d16-m-local
	$(DIMS) --algos b --variants plain --dim 16 --seeds 0,1,2,3,4,6 $(LOCAL) --set batch=8192 --out docs/results/dims-d16-plain-8192
	$(DIMS30) --algos drl --variants plain --dim 8 --rotated --seeds 10 $(LOCAL) --set restart_beyond=4 \
		--out docs/results/dims-d8-rotated-drl-plain-30k
	$(DIMS) --algos drl --variants plain $(DIMS16) --seeds 2 --set td_control_variate=true --set restart_beyond=4 \
		--out docs/results/dims-d16-drl-plain
	$(DIMS) --algos b --variants mf $(DIMS16) --set td_control_variate=true --set hutchinson=true \
		--out docs/results/dims-d16-hutchinson
	$(DIMS) --algos b --variants mf --dim 32 --seeds 1 --set lr_critic=4e-4 --set eval_chains=4000 \
		--out docs/results/dims-d32
	$(DIMS) --algos b --variants mf --dim 32 --set td_control_variate=true --set eval_chains=4000 \
		--set antithetic=false --set restart_beyond=4 --out docs/results/dims-d32-restart
	$(DIMS) --algos b --variants mf --dim 32 --seeds 10 $(WALLS) --set antithetic=false --out docs/results/dims-d32-local
	$(DIMS) --algos b --variants mf --dim 32 --seeds 10 $(WALLS) --out docs/results/dims-d32-pairs
	$(DIMS) --algos b --variants mf --dim 32 --seeds 3 --set eval_chains=4000 --set antithetic=false \
		--set restart_beyond=4 --set lr_local=1e-4 --out docs/results/dims-d32-local-no-cv
	$(DIMS) --algos m --variants mf --dim 32 --seeds 10 $(WALLS) --out docs/results/dims-d32-m
	$(DIMS) --algos m --variants mf --dim 32 --seeds 2 $(LOCAL) --out docs/results/dims-d32-m-no-walls
	$(DIMS) --algos drl --variants mf --dim 32 $(WALLS) --out docs/results/dims-d32-drl
	$(DIMS) --algos m --variants mf --dim 64 --seeds 1 $(WALLS) --set antithetic=false --set hidden_per_dim=2 \
		--out docs/results/dims-d64-m
	$(DIMSLONG) --algos m --variants mf --dim 64 --seeds 1 $(WALLS) --set antithetic=false --set hidden_per_dim=2 \
		--out docs/results/dims-d64-m-long
	$(DIMS) --algos b --variants mf --dim 64 --seeds 4 $(WALLS) --set antithetic=false --out docs/results/dims-d64
	$(DIMS) --algos b --variants mf --dim 64 --seeds 5 $(WALLS) --out docs/results/dims-d64-pairs
	$(DIMS) --algos b --variants mf --dim 100 --seeds 1 $(WALLS) --set antithetic=false --out docs/results/dims-d100
	$(DIMSLONG) --algos b --variants mf --dim 64 --seeds 2 $(WALLS) --set antithetic=false --out docs/results/dims-d64-long
	$(DIMSLONG) --algos b --variants mf --dim 100 --seeds 1 $(WALLS) --set antithetic=false --out docs/results/dims-d100-long
	$(DIMS) --algos b --variants mf --dim 64 --seeds 5 $(WALLS) --set antithetic=false --set hidden_per_dim=2 \
		--out docs/results/dims-d64-wide
	$(DIMS) --algos b --variants mf --dim 64 --seeds 2 $(WALLS) --set antithetic=false --set hidden_per_dim=2 \
		--set batch=4096 --out docs/results/dims-d64-wide-4096
	$(DIMSLONG) --algos b --variants mf --dim 64 --seeds 1 $(WALLS) --set antithetic=false --set hidden_per_dim=2 \
		--out docs/results/dims-d64-wide-long
	$(DIMS) --algos b --variants mf --dim 64 --seeds 2 $(WALLS) --set hidden_per_dim=2 --out docs/results/dims-d64-wide-pairs
	$(DIMS) --algos b --variants mf --dim 100 --seeds 1 $(WALLS) --set hidden_per_dim=2 --out docs/results/dims-d100-wide-pairs
	$(DIMSLONG) --algos b --variants mf --dim 100 --seeds 1 $(WALLS) --set antithetic=false --set hidden_per_dim=2 \
		--out docs/results/dims-d100-wide-long
	for s in actor_gradient=score per_coordinate=false lr_actor=1e-4; do \
		$(DIMS) --algos b --variants mf --dim 8 --set $$s --out runs/report-dims-$$s || exit 1; done
	$(REPORT) runs/dims/b+mf_d-8_actor_gradient-score-s? runs/dims/b+mf_d-8_per_coordinate-False-s? \
		runs/dims/b+mf_d-8_lr_actor-0.0001-s? --out docs/results/dims-ablations
	$(PY) run_experiments.py scaling docs/results/dims-d* --out docs/results/dims --replace

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis

# The GPU checks, for a machine with a GPU and CuPy (python3 with CuPy, pytest and hypothesis,
# no venv), sized for one 10-minute call: the whole suite on CuPy except the long
# quick-preset trainings (at most 5 minutes), bench for the three presets (1 minute each at
# most) into docs/results/bench/gpu-*/, then the long trainings (2 minutes at most). Test
# logs go to $(GPU_OUT)/. On the lent machine: make gpu-check GPU_OUT=$$OUT/gpu-check
GPU_OUT ?= gpu-check
LONG    := quick_preset_end_to_end or deep_m_settles
gpu-check:
	mkdir -p $(GPU_OUT)
	nvidia-smi > $(GPU_OUT)/nvidia-smi.txt 2>&1 || true
	-MFCG_BACKEND=cupy timeout 300 $(PYTHON) -m pytest -q -k "not ($(LONG))" > $(GPU_OUT)/pytest-short.txt 2>&1; tail -40 $(GPU_OUT)/pytest-short.txt
	-for p in paper lean quick; do MFCG_BACKEND=cupy timeout 60 $(PYTHON) run_experiments.py bench --preset $$p --replace \
		--out docs/results/bench > $(GPU_OUT)/bench-$$p.txt 2>&1; cat $(GPU_OUT)/bench-$$p.txt; done
	-cp -r docs/results/bench $(GPU_OUT)/
	-MFCG_BACKEND=cupy timeout 120 $(PYTHON) -m pytest -q -x -k "$(LONG)" > $(GPU_OUT)/pytest-long.txt 2>&1; tail -15 $(GPU_OUT)/pytest-long.txt
