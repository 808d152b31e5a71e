"""The steady preset settles where its report says (docs/results/steady, docs/robust.md).

Each test retrains the start of one committed run of that report, from the config it was
made with, and checks two things: that its start is the report's (to within what differs
between CPUs), and that a few evaluations past the step from which the report has the run
settled, it is within the settled thresholds of its equilibrium (run_experiments.SETTLED)
at each of the last SETTLED_EVALS evaluations up to where the test stops. Retraining the
whole run would cost minutes per algorithm; the start shows the same thing.
"""
import math

import pytest

import mfcg
import run_experiments as rx

# Runs repeat bit for bit on one CPU. On another, some float32 results round differently in
# the last bit (NumPy's tanh and exp, the BLAS kernels: AVX-512 or not), and training carries
# the difference on: retrained on an Intel Xeon with AVX-512, runs made on an AMD EPYC without it
# keep their control errors within 0.009 of the report's, but the local law's mean, which the
# evaluation reads off the fast-learning local score network, drifts apart: within 0.010 of
# the report's over the first 1,000 steps, up to 0.024 later (M seed 7, step 2,750; B seed 6
# 0.016 at step 1,250). So the control error is compared at every evaluation and the
# distance over the first SAME_DISTANCE_UNTIL steps, both to within BETWEEN_CPUS; after that
# the retrained run is another draw of the same learner, and it is checked for having settled.
BETWEEN_CPUS = 0.02
SAME_DISTANCE_UNTIL = 1000
SETTLED_EVALS = 3

# (committed run, steps retrained, equilibrium it settles at): per algorithm and variant a
# seed the report has settling early (the suite stays short), stopped where both the report
# and a retraining on the other CPU above are within the thresholds at the last three
# evaluations. Plain DRL settles from step 5,000 at the earliest, too late to retrain here;
# AC does not settle.
CASES = [
    ("b-s6", 2500, "m_mfg"),
    ("b+mf-s3", 2250, "m*"),
    ("m-s3", 3500, "m_mfg"),      # both M runs are shared with tests/test_mf_correction.py
    ("m+mf-s0", 2000, "m*"),
    ("drl+mf-s7", 1750, "m*"),
]


@pytest.mark.parametrize("name, until, at", CASES)
def test_steady_run_settles_where_its_report_says(name, until, at, steady_run):
    state, saved, reported = steady_run(name, until)
    cfg = mfcg.Config(**saved["config"])
    assert saved["preset"] == "steady" and saved["settings"] == {}
    assert cfg == mfcg.preset("steady", cfg.algo, seed=cfg.seed, mf_correction=cfg.mf_correction)
    distance, control = rx.EQUILIBRIA[at]
    start = rx.settled_from(reported, at)
    assert start is not None and rx.settled(reported, cfg.steps, at), "the report has it settled"
    mine = state["history"]
    assert [r["step"] for r in mine] == [r["step"] for r in reported if r["step"] <= until]
    for rec, ref in zip(mine, reported):
        keys = (distance, control) if rec["step"] <= SAME_DISTANCE_UNTIL else (control,)
        for key in keys:
            assert abs(rec[key] - ref[key]) < BETWEEN_CPUS, (rec["step"], key, rec[key], ref[key])
    late = mine[-SETTLED_EVALS:]
    assert late[0]["step"] >= start, "the test stops before the report has the run settled"
    for r in late:
        assert r[distance] < rx.SETTLED["distance"] and r[control] < rx.SETTLED["control"], r
        assert all(math.isfinite(v) for v in r.values()), r
    last = mine[-1]  # the local score network has learned the population it was trained on
    assert abs(last["local_mean_density"] - last["agents_mean"]) < 0.05, last
    assert abs(last["local_std_density"] / last["agents_std"] - 1) < 0.15, last
