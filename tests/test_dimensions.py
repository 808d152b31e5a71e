"""The problem in d > 1 dimensions as a first-class setting: each coordinate judged on its
own, and the command line's --dim."""
import json
import shutil

import numpy as np
import pytest

import mfcg
import nets
import run_experiments as rx


def affine_actor(A, b, eps=1e-4):
    """An actor whose mean action is x A + b to within O(eps²): one tanh unit per coordinate,
    tanh(eps x) ≈ eps x, scaled back by 1/eps (float64)."""
    d = len(b)
    return {"W1": eps * np.eye(d), "b1": np.zeros(d), "Wm": np.asarray(A) / eps, "bm": np.asarray(b, float),
            "Ws": np.zeros((d, d)), "bs": np.zeros(d)}


@pytest.mark.parametrize("leak, shift", [(0.0, 0.0), (0.3, 0.0), (0.0, 0.2), (0.25, -0.1)])
def test_coordinate_metrics_read_each_coordinate(leak, shift):
    """An affine actor: α̂'s slope on the diagonal, coordinate 1 leaking `leak` of x_0 into
    its action, coordinate 2's action shifted by `shift`; local samples whose coordinate 2
    sits 0.3 from m*. Each metric is what the formula gives, coordinate by coordinate."""
    pb = mfcg.LQProblem(dim=3)
    sol = pb.solution()
    g = 2.0 * sol.gamma2
    A = -g * np.eye(3)
    A[0, 1] = leak                                  # a_1 = … + leak · x_0: J_10 = leak
    b = np.full(3, g * sol.mean)
    b[2] += shift
    cfg = mfcg.Config(problem=pb, dtype="float64")
    state = {"x": np.zeros((1, 3)), "params": {"actor": affine_actor(A, b)}}
    rng = np.random.default_rng(0)
    x_eval = sol.mean + sol.std * rng.standard_normal((4000, 3))
    x_nash = x_eval - sol.mean + sol.mean_mfg
    local = np.tile([sol.mean, sol.mean - 0.1, sol.mean + 0.3], (50, 1))
    actions = {"mfcg": mfcg.mean_action(state, x_eval), "nash": mfcg.mean_action(state, x_nash)}
    out = mfcg.coordinate_metrics(cfg, local, x_eval, x_nash, actions)
    assert out["mean_error_worst"] == pytest.approx(0.3)
    assert out["mean_error_rms"] == pytest.approx(np.sqrt((0.1 ** 2 + 0.3 ** 2) / 3))
    assert out["mean_error_mfg_worst"] == pytest.approx(abs(sol.mean - 0.1 - sol.mean_mfg))
    assert out["jacobian_diag_error"] == pytest.approx(0.0, abs=1e-6)
    assert out["jacobian_offdiag"] == pytest.approx(leak, abs=1e-6)
    worst = max(np.sqrt(np.mean((leak * x_eval[:, 0]) ** 2)), abs(shift))
    assert out["control_rmse_worst"] == pytest.approx(worst, rel=1e-5, abs=1e-7)
    # against the Nash control every coordinate is off by g (m_mfg − m*), plus its own error
    nash = max(np.sqrt(np.mean((leak * x_nash[:, 0] - g * (sol.mean_mfg - sol.mean)) ** 2)),
               abs(shift - g * (sol.mean_mfg - sol.mean)))
    assert out["control_rmse_at_mfg_worst"] == pytest.approx(nash, rel=1e-5)


def test_evaluate_adds_the_coordinates_only_beyond_one_dimension():
    one = mfcg.train(mfcg.preset("quick", "b", steps=2, eval_every=2, batch=8, n_samples=16, eval_samples=64))
    four = mfcg.train(mfcg.preset("quick", "b", steps=2, eval_every=2, batch=8, n_samples=16, eval_samples=64,
                                  problem=mfcg.LQProblem(dim=4)))
    added = set(four["history"][-1]) - set(one["history"][-1])
    assert added == {"mean_error_worst", "mean_error_rms", "mean_error_mfg_worst", "mean_error_mfg_rms",
                     "control_rmse_worst", "control_rmse_at_mfg_worst", "jacobian_diag_error", "jacobian_offdiag"}
    assert all(np.isfinite(four["history"][-1][k]) for k in added)


def test_dim_names_the_run_and_sets_the_problem():
    cfg = rx.run_config("steady", "b", 3, True, dim=8)
    assert cfg.problem == mfcg.LQProblem(dim=8) and cfg.seed == 3
    assert rx.run_config("steady", "b", 3, True) == mfcg.preset("steady", "b", seed=3, mf_correction=True)
    assert rx.run_label("b", True, {"antithetic": False}, dim=8) == "b+mf d=8 antithetic=False"
    assert rx.default_run_dir("runs", "steady", "b", 3, True, None, 8) == "runs/steady/b+mf_d-8-s3"
    assert rx.default_run_dir("runs", "steady", "b", 3, True) == "runs/steady/b+mf-s3"


def test_settled_in_d_dimensions_judges_the_worst_coordinate():
    """In 4 dimensions a mean off by 0.04 in every coordinate has norm 0.08: the norm would
    refuse it, the worst coordinate (0.04) accepts it; one coordinate off by 0.06 is refused
    though the others are exact."""
    def record(step, norm, worst, control_worst=0.05):
        return {"step": step, "local_mean": 1.0, "mean_error": norm, "mean_error_worst": worst,
                "control_rmse": 0.05, "control_rmse_worst": control_worst,
                "mean_error_mfg": 1.0, "mean_error_mfg_worst": 0.5,
                "control_rmse_at_mfg": 0.9, "control_rmse_at_mfg_worst": 0.9}
    even = [record(n, 0.08, 0.04) for n in (50, 100)]
    assert rx.judged_by(even[0], "m*") == ("mean_error_worst", "control_rmse_worst")
    assert rx.settled(even, 100, "m*") and rx.settled_from(even, "m*") == 50
    assert rx.settled_on_average(even, 100, "m*", 0.24)
    one_off = [record(n, 0.06, 0.06) for n in (50, 100)]
    assert not rx.settled(one_off, 100, "m*") and not rx.settled_on_average(one_off, 100, "m*", 0.24)
    leaking = [record(n, 0.08, 0.04, control_worst=0.12) for n in (50, 100)]
    assert not rx.settled(leaking, 100, "m*")


def test_runs_in_two_dimensions_report(tmp_path):
    """`run --dim 2`, twice, then `report`: the per-coordinate keys in the history, the
    marginals and the per-coordinate means in the run file, and the four figures."""
    import os
    import subprocess
    import sys
    import rundir
    script = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "run_experiments.py")
    tiny = ["--steps", "20", "--set", "eval_every=10", "--set", "batch=16", "--set", "n_samples=32",
            "--set", "eval_samples=64"]
    for seed in (0, 1):
        p = subprocess.run([sys.executable, script, "run", "--algo", "b", "--mf", "--dim", "2", "--seed", str(seed),
                            *tiny, "--runs", "runs"], cwd=tmp_path, capture_output=True, text=True)
        assert p.returncode == 0, p.stderr
    runs = sorted((tmp_path / "runs" / "quick").iterdir())
    assert [r.name for r in runs] == [f"b+mf_d-2_batch-16_n_samples-32_eval_every-10_eval_samples-64-s{s}" for s in (0, 1)]
    saved, metrics, history, curves = rundir.unpack_run(str(runs[0] / "run.npz"))
    assert saved["config"]["problem"]["dim"] == 2 and "control_rmse_worst" in history[-1]
    assert curves["local_samples"].shape == (32, 2) and curves["local_means"].shape == (2,)
    p = subprocess.run([sys.executable, script, "report", *map(str, runs), "--out", "res"], cwd=tmp_path,
                       capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    assert {"learning_curves.png", "settled.png", "laws.png", "controls.png"} <= set(os.listdir(tmp_path / "res"))
    lines = (tmp_path / "res" / "RESULTS.md").read_text().splitlines()   # the table judges each coordinate
    at = next(i for i, line in enumerate(lines) if line.startswith("| algorithm | runs |"))
    head, row = ([c.strip() for c in lines[i].split("|")] for i in (at, at + 2))
    worst = [rundir.unpack_run(str(r / "run.npz"))[1]["mean_error_worst"] for r in runs]
    assert row[head.index("worst coord. to m*")] == f"{np.mean(worst):.3f} ± {np.std(worst, ddof=1):.3f}"
    assert "slope" not in head and "dist. to m*" not in head and "worst control err < 0.3 from" in head
    # a third run, in three dimensions with the dims preset (the pathwise gradient), and the table over d
    p = subprocess.run([sys.executable, script, "run", "--algo", "b", "--mf", "--dim", "3", "--preset", "dims",
                        *tiny, "--out", "d3"], cwd=tmp_path, capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    assert rundir.unpack_run(str(tmp_path / "d3" / "run.npz"))[1]["peak_rss_mb"] > 10   # MiB: a Python with NumPy
    p = subprocess.run([sys.executable, script, "report", "d3", "--out", "res3"], cwd=tmp_path, capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    p = subprocess.run([sys.executable, script, "run", "--algo", "b", "--dim", "1", *tiny, "--out", "d1"],
                       cwd=tmp_path, capture_output=True, text=True)   # and one at d = 1, without the correction
    assert p.returncode == 0, p.stderr
    p = subprocess.run([sys.executable, script, "report", "d1", "--out", "res1"], cwd=tmp_path, capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    p = subprocess.run([sys.executable, script, "scaling", "res", "res3", "res1", "res/", "--out", "sc"], cwd=tmp_path,
                       capture_output=True, text=True)   # a folder given twice counts once
    assert p.returncode == 0, p.stderr
    rows = json.loads((tmp_path / "sc" / "scaling.json").read_text())["rows"]
    assert [(r["learner"], r["preset"], r["dim"], r["runs"], r["seeds"]) for r in rows] == [
        ("b batch=16 n_samples=32 eval_every=10 eval_samples=64 steps=20", "quick", 1, 1, [0]),
        ("b+mf batch=16 n_samples=32 eval_every=10 eval_samples=64 steps=20", "quick", 2, 2, [0, 1]),
        ("b+mf batch=16 n_samples=32 eval_every=10 eval_samples=64 steps=20", "dims", 3, 1, [0])]   # by d
    assert {r["changes"] for r in rows} == {"batch=16 n_samples=32 eval_every=10 eval_samples=64 steps=20"}
    # each run's late window, read straight from its file: the distance to the equilibrium its
    # variant aims at (d = 1, plain: m_mfg), the worst coordinate's beyond
    keys = [("mean_error_mfg", "control_rmse_at_mfg"), ("mean_error_worst", "control_rmse_worst"),
            ("mean_error_worst", "control_rmse_worst")]
    files = ([tmp_path / "d1" / "run.npz"], [r / "run.npz" for r in runs], [tmp_path / "d3" / "run.npz"])
    for row, (distance, control), paths in zip(rows, keys, files):
        late = [rx.late_part(h, 20) for h in (rundir.unpack_run(str(q))[2] for q in paths)]
        assert row["distance"] == [np.median([e[distance] for e in w]) for w in late]
        assert row["control"] == [np.median([e[control] for e in w]) for w in late]
        assert row["settled"] == 0 and row["not_settled"] == row["seeds"]   # 20 steps settle nothing
    shutil.copytree(tmp_path / "res", tmp_path / "again")   # two reports that keep the same runs
    p = subprocess.run([sys.executable, script, "scaling", "res", "again", "--out", "sc2"], cwd=tmp_path,
                       capture_output=True, text=True)
    assert p.returncode == 2 and "are the same run" in p.stderr and not (tmp_path / "sc2").exists()
    table = (tmp_path / "sc" / "SCALING.md").read_text()
    assert "| 2 | b+mf | quick | batch=16 n_samples=32 eval_every=10 eval_samples=64 steps=20 | 0/2 | 0, 1 | 0/2 |" in table
    # the same learner and seed over more steps is another row, not the same run twice
    p = subprocess.run([sys.executable, script, "run", "--algo", "b", "--mf", "--dim", "2", "--seed", "0",
                        *tiny[2:], "--steps", "30", "--out", "longer"], cwd=tmp_path, capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    p = subprocess.run([sys.executable, script, "report", "longer", "--out", "res30"], cwd=tmp_path, capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    p = subprocess.run([sys.executable, script, "scaling", "res", "res30", "--out", "sc3"], cwd=tmp_path,
                       capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    rows = json.loads((tmp_path / "sc3" / "scaling.json").read_text())["rows"]
    assert [(r["learner"].split()[-1], r["seeds"]) for r in rows] == [("steps=20", [0, 1]), ("steps=30", [0])]
    assert (tmp_path / "sc" / "scaling.png").read_bytes()[:4] == b"\x89PNG"
    # an earlier table is written over only when asked
    before = (tmp_path / "sc" / "SCALING.md").read_bytes()
    p = subprocess.run([sys.executable, script, "scaling", "res30", "--out", "sc"], cwd=tmp_path,
                       capture_output=True, text=True)
    assert p.returncode == 2 and "holds an earlier result: pass --replace" in p.stderr
    assert (tmp_path / "sc" / "SCALING.md").read_bytes() == before
    p = subprocess.run([sys.executable, script, "scaling", "res30", "--out", "sc", "--replace"], cwd=tmp_path,
                       capture_output=True, text=True)
    assert p.returncode == 0 and "| 2 |" in (tmp_path / "sc" / "SCALING.md").read_text()
    assert "| 1 |" not in (tmp_path / "sc" / "SCALING.md").read_text()
    p = subprocess.run([sys.executable, script, "reproduce", "--algos", "b", "--seeds", "1", "--dim", "8",
                        "--dry-run"], cwd=tmp_path, capture_output=True, text=True)
    assert p.returncode == 0 and all("--dim 8" in line for line in p.stdout.splitlines())
    assert "runs/quick/b_d-8-s0" in p.stdout


# --- the coupled benchmark: different 1-d problems, rotated --------------------------------------

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

ROT = mfcg.rotated_problem(3, rotation=7)
ROT_SOL = ROT.solution()


def test_the_rotation_is_orthogonal_and_fixed_by_its_seed():
    q = ROT.rotation_matrix
    np.testing.assert_allclose(q @ q.T, np.eye(3), atol=1e-14)
    np.testing.assert_array_equal(q, mfcg.rotated_problem(3, rotation=7).rotation_matrix)
    assert not np.allclose(q, mfcg.rotated_problem(3, rotation=8).rotation_matrix)
    assert np.abs(q - np.diag(np.diag(q))).max() > 0.1   # it does couple the coordinates
    np.testing.assert_array_equal(mfcg.RotatedLQProblem(ROT.coordinates, rotation=0).rotation_matrix, np.eye(3))


@settings(max_examples=20)
@given(st.integers(0, 2 ** 31 - 1))
def test_the_rotated_cost_is_each_coordinate_s_cost_in_y(seed):
    """f(x, m, m̃, a) = Σ_i f_i(y_i, (Qᵀm)_i, (Qᵀm̃)_i, (Qᵀa)_i), each f_i the 1-d problem's."""
    rng = np.random.default_rng(seed)
    x, a, m, mt = rng.normal(size=(5, 3)), rng.normal(size=(5, 3)), rng.normal(size=3), rng.normal(size=3)
    q = ROT.rotation_matrix
    y, b, my, mty = x @ q, a @ q, m @ q, mt @ q
    by_coordinate = sum(c.running_cost(y[:, i:i + 1], my[i], mty[i], b[:, i:i + 1])
                        for i, c in enumerate(ROT.coordinates))
    np.testing.assert_allclose(ROT.running_cost(x, m, mt, a), by_coordinate, rtol=1e-12)
    np.testing.assert_allclose(ROT.reward(x, m, mt, a), -0.01 * by_coordinate, rtol=1e-12)


@settings(max_examples=20)
@given(st.integers(0, 2 ** 31 - 1))
def test_rotated_dcost_dm_tilde_matches_finite_differences(seed):
    rng = np.random.default_rng(seed)
    x, a, m, mt = rng.normal(size=(4, 3)), rng.normal(size=(4, 3)), rng.normal(size=3), rng.normal(size=3)
    h, grad = 1e-6, ROT.dcost_dm_tilde(x, mt)
    for j in range(3):
        e = np.eye(3)[j] * h
        fd = (ROT.running_cost(x, m, mt + e, a) - ROT.running_cost(x, m, mt - e, a)) / (2 * h)
        np.testing.assert_allclose(grad[:, j], fd, rtol=1e-6, atol=1e-9)


def test_the_rotated_closed_form_is_the_decoupled_one_rotated():
    q = ROT.rotation_matrix
    each = [c.solution() for c in ROT.coordinates]
    np.testing.assert_allclose(ROT_SOL.mean, np.array([s.mean for s in each]) @ q.T)
    x = np.random.default_rng(0).normal(size=(6, 3))
    y = x @ q
    alpha_y = np.hstack([s.control(y[:, i:i + 1]) for i, s in enumerate(each)])
    np.testing.assert_allclose(ROT_SOL.control(x), alpha_y @ q.T, rtol=1e-12)
    np.testing.assert_allclose(ROT_SOL.value(x), sum(s.value(y[:, i:i + 1]) for i, s in enumerate(each)))
    g = np.array([s.gamma2 for s in each])
    np.testing.assert_allclose(ROT_SOL.jacobian(), -2 * q @ np.diag(g) @ q.T, atol=1e-14)
    # the control is affine with that Jacobian, and zero at m*
    np.testing.assert_allclose(ROT_SOL.control(x) - ROT_SOL.control(ROT_SOL.mean[None, :]), (x - ROT_SOL.mean) @ ROT_SOL.jacobian().T,
                               atol=1e-12)
    np.testing.assert_allclose(ROT_SOL.control(ROT_SOL.mean[None, :]), 0.0, atol=1e-14)


def test_population_under_the_rotated_control_reaches_the_rotated_limiting_law():
    """Agents from N(0, I) under α̂ settle at mean Q m*_y and covariance Q diag(v) Qᵀ, v each
    coordinate's Euler–Maruyama stationary variance σᵢ²Δt/(1 − (1 − 2Γ2ᵢΔt)²): the costs
    and the noise couple the coordinates of x, and the closed form says how."""
    rng = np.random.default_rng(12)
    n = 100_000
    x = rng.standard_normal((n, 3))
    for _ in range(1000):
        x = ROT.step(x, ROT_SOL.control(x), rng)
    q, dt = ROT.rotation_matrix, ROT.dt
    sig = np.array([c.sigma for c in ROT.coordinates])
    v = sig ** 2 * dt / (1 - (1 - 2 * ROT_SOL.gamma2_y * dt) ** 2)
    cov = q @ np.diag(v) @ q.T
    se = np.sqrt(np.diag(cov) / n)
    assert np.all(np.abs(x.mean(axis=0) - ROT_SOL.mean) < 5 * se)
    emp = np.cov(x.T)
    assert np.abs(emp - cov).max() < 5 * np.sqrt(2 / n) * np.diag(cov).max()
    assert np.abs(cov - np.diag(np.diag(cov))).max() > 0.01       # correlated in x
    np.testing.assert_allclose(np.sqrt(np.diag(cov)), ROT_SOL.std, rtol=0.01)  # continuous vs discrete
    # and sample draws that law's continuous-time version
    z = rng.standard_normal((n, 3))
    np.testing.assert_allclose(np.cov(ROT_SOL.sample(z).T), q @ np.diag(ROT_SOL.std_y ** 2) @ q.T, atol=0.003)


def test_a_rotated_problem_round_trips_and_trains():
    import json
    cfg = mfcg.preset("quick", "b", problem=ROT, steps=4, eval_every=2, batch=8, n_samples=16, eval_samples=64)
    again = mfcg.Config(**json.loads(json.dumps(cfg.to_dict())))
    assert again == cfg and hash(again.problem) == hash(cfg.problem)
    record = mfcg.train(cfg)["history"][-1]
    assert all(np.isfinite(record[k]) for k in ("mean_error_worst", "control_rmse_worst", "jacobian_offdiag",
                                                 "value_rmse"))
    with pytest.raises(ValueError, match="must share beta and dt"):
        mfcg.RotatedLQProblem((mfcg.LQProblem(), mfcg.LQProblem(dt=0.02)))
    with pytest.raises(ValueError, match="each of the coordinates must be a 1-d LQProblem"):
        mfcg.RotatedLQProblem((mfcg.LQProblem(dim=2),))
    with pytest.raises(ValueError, match="rotation must be an integer >= 0"):
        mfcg.RotatedLQProblem((mfcg.LQProblem(),), rotation=-1)
    assert rx.run_config("steady", "b", 0, True, dim=8, rotated=True).problem == mfcg.rotated_problem(8)
    assert rx.run_label("b", True, None, 8, True) == "b+mf d=8 rotated"


def test_rotated_needs_two_dimensions_and_its_jacobian_needs_a_spread():
    with pytest.raises(rx.UsageError, match="--rotated needs --dim 2 or more"):
        rx.run_config("steady", "b", 0, True, dim=1, rotated=True)
    # a coordinate without noise: x_eval spans no 2 dimensions, so no Jacobian is fitted
    pb = mfcg.LQProblem(dim=2, sigma=0.0)
    sol = pb.solution()
    cfg = mfcg.Config(problem=pb, dtype="float64")
    g = 2.0 * sol.gamma2
    state = {"x": np.zeros((1, 2)), "params": {"actor": affine_actor(-g * np.eye(2), np.full(2, g * sol.mean))}}
    z = np.random.default_rng(0).standard_normal((100, 2))
    x_eval, x_nash = sol.sample(z), sol.sample(z, nash=True)
    actions = {"mfcg": mfcg.mean_action(state, x_eval), "nash": mfcg.mean_action(state, x_nash)}
    out = mfcg.coordinate_metrics(cfg, np.full((10, 2), sol.mean), x_eval, x_nash, actions)
    assert np.isnan(out["jacobian_diag_error"]) and np.isnan(out["jacobian_offdiag"])
    assert out["control_rmse_worst"] < 1e-6


def test_a_late_window_in_d_dimensions_reads_the_worst_coordinate():
    """A population at −m* has the norm of one at m*: the late window must not take it for
    a settled one (the worst coordinate is 2m* away)."""
    rows = [{"step": n, "local_mean": 0.34, "mean_error_worst": 0.48, "mean_error_mfg_worst": 0.95} for n in (50, 100)]
    w = rx.late_window(rows, 100, 0.24, 0.71)
    assert w["median"] == pytest.approx(0.48) and w["near_m_star"] == 0.0 and w["agents_mean"] is None


def test_trace_measures_the_estimates_against_the_exact_trace(tmp_path):
    """In one dimension a Rademacher probe is exact (z² = 1): no variance, no bias; a Gaussian
    one is not. In three the estimates are unbiased: their mean over the draws is within a
    few standard errors of the exact gradient."""
    import json
    assert rx.main(["trace", "--dims", "1,3", "--batch", "32", "--probes", "16", "--reps", "1",
                    "--out", str(tmp_path)]) == 0
    (folder,) = list(tmp_path.iterdir())
    rows = json.loads((folder / "trace.json").read_text())["rows"]
    one, three = rows
    assert one["variance_rademacher"] < 1e-10 and one["bias_rademacher"] < 1e-5
    assert one["variance_gaussian"] > 1e-3
    for name in ("gaussian", "rademacher"):
        assert three[f"variance_{name}"] > 1e-4
        assert three[f"bias_{name}"] < 4 * np.sqrt(three[f"variance_{name}"] / 16)
    assert "| 3 |" in (folder / "TRACE.md").read_text()
    assert rx.main(["trace", "--dims", "0"]) == 2
    before = (folder / "trace.json").read_bytes()   # an earlier result is written over only when asked
    assert rx.main(["trace", "--dims", "2", "--batch", "32", "--probes", "2", "--reps", "1", "--out", str(tmp_path)]) == 2
    assert (folder / "trace.json").read_bytes() == before
    assert rx.main(["trace", "--dims", "2", "--batch", "32", "--probes", "2", "--reps", "1", "--out", str(tmp_path),
                    "--replace"]) == 0
    assert [r["d"] for r in json.loads((folder / "trace.json").read_text())["rows"]] == [2]


@pytest.mark.parametrize("rotated, per_coordinate", [(False, False), (False, True), (True, False), (True, True)])
def test_action_value_gradient_is_the_slope_of_the_one_step_value(rotated, per_coordinate):
    """∂Q/∂a, Q(a) = scale · r(x, a) + γ V(x'(a)) with x'(a) the problem's own step under
    one fixed noise draw: against central differences in each coordinate of each agent's
    action. Checks the reward's slope, the step's ∂x'/∂a = Δt I and the scale 1/d."""
    d, n, h = 3, 5, 1e-6
    pb = mfcg.rotated_problem(d) if rotated else mfcg.LQProblem(dim=d)
    cfg = mfcg.Config(problem=pb, dtype="float64", per_coordinate=per_coordinate)
    rng = np.random.default_rng(4)
    critic = mfcg.nets.init_critic(d, rng, hidden=7, dtype=np.float64, xp=np)
    x, a = rng.normal(size=(n, d)), rng.normal(size=(n, d))
    m, m_tilde = rng.normal(size=d), rng.normal(size=d)

    def q(actions):
        x_next = pb.step(x, actions, np.random.default_rng(9))   # the same noise every call
        return mfcg.reward_scale(cfg) * pb.reward(x, m, m_tilde, actions) + pb.discount * mfcg.nets.critic_forward(critic, x_next)

    num = np.empty_like(a)
    for i in range(d):
        e = np.zeros(d)
        e[i] = h
        num[:, i] = (q(a + e) - q(a - e)) / (2 * h)
    x_next = pb.step(x, a, np.random.default_rng(9))
    got = mfcg.action_value_gradient(cfg, a, mfcg.nets.critic_value_and_input_grad(critic, x_next)[1])
    np.testing.assert_allclose(got, num, rtol=1e-6, atol=1e-10)
    assert mfcg.reward_scale(cfg) == (1 / d if per_coordinate else 1.0)


def test_per_coordinate_divides_the_reward_by_d():
    """With per_coordinate the agents are paid r/d, the mean-field correction included, for
    the same actions."""
    pb = mfcg.LQProblem(dim=4)
    field = mfcg.MeanField(np.full(4, 0.2), np.full(4, 0.3), np.full(4, 0.1))
    out = {}
    for per_coordinate in (False, True):
        cfg = mfcg.preset("steady", "b", problem=pb, per_coordinate=per_coordinate, mf_correction=True,
                          dtype="float64", batch=8)
        state = mfcg.init_state(cfg, np)
        out[per_coordinate] = mfcg.act_and_step(state, cfg, state["x"], field, np.random.default_rng(1))
    np.testing.assert_array_equal(out[True][0], out[False][0])             # the same actions
    np.testing.assert_allclose(out[True][1], out[False][1] / 4, rtol=1e-15)  # r / d


@pytest.mark.parametrize("changes, match", [
    (dict(actor_gradient="reparam"), "actor_gradient must be 'score' or 'pathwise'"),
    (dict(algo="drl", target_every=0, actor_gradient="pathwise"), "actor_gradient must be 'score' for drl"),
])
def test_config_refuses_an_actor_gradient_it_cannot_train(changes, match):
    with pytest.raises(ValueError, match=match):
        mfcg.Config(**changes)


@pytest.mark.parametrize("d, per_dim, widths", [
    (100, 0, (64, 128, 128)),    # off: the Config's widths at any d
    (32, 2, (64, 128, 128)),     # 2d = 64 is no more than any of them: the same networks
    (40, 2, (80, 128, 128)),
    (100, 2, (200, 200, 200)),
])
def test_hidden_per_dim_raises_each_width_to_a_multiple_of_d(d, per_dim, widths):
    cfg = mfcg.preset("dims", "b", problem=mfcg.LQProblem(dim=d), hidden_per_dim=per_dim, batch=4, n_samples=4)
    assert mfcg.hidden_units(cfg) == widths
    params = mfcg.init_state(cfg, np)["params"]
    got = tuple(params[net]["W1"].shape for net in ("actor", "critic", "score_global", "score_local"))
    assert got == ((d, widths[0]), (d, widths[1]), (d, widths[2]), (d, widths[2]))


def test_an_actor_narrower_than_d_cannot_have_a_full_rank_jacobian():
    """Why hidden_per_dim exists: ∂μ/∂x = W1 diag(1 − h²) Wm has rank at most the hidden
    width, so at d = 100 the default actor (64 units) leaves 36 directions uncontrolled,
    whatever it learns; at 2d units its Jacobian is of full rank from the start."""
    d = 100
    for per_dim, rank in ((0, 64), (2, d)):
        cfg = mfcg.preset("dims", "b", problem=mfcg.LQProblem(dim=d), hidden_per_dim=per_dim, dtype="float64",
                          batch=4, n_samples=4)
        p = mfcg.init_state(cfg, np)["params"]["actor"]
        x = np.random.default_rng(0).standard_normal(d)
        jac = np.empty((d, d))
        for i in range(d):  # central differences of the mean action, column by column
            e = np.zeros(d)
            e[i] = 1e-5
            jac[:, i] = (nets.actor_forward(p, (x + e)[None])[0][0]
                         - nets.actor_forward(p, (x - e)[None])[0][0]) / 2e-5
        assert np.linalg.matrix_rank(jac, tol=1e-6 * np.abs(jac).max()) == rank


def test_config_refuses_a_negative_hidden_per_dim():
    with pytest.raises(ValueError, match="hidden_per_dim must be >= 0, got -1"):
        mfcg.Config(hidden_per_dim=-1)


def test_best_rows_keeps_each_learners_configuration_that_settled_most():
    """best_rows (the rows the scaling figure draws) keeps, per algorithm (variant and benchmark apart) and d, the row with the
    most runs settled, then settled on average, then the most runs, then the smallest
    median worst distance."""
    def row(algorithm, dim, settled, average, runs, distance):
        return dict(algorithm=algorithm, dim=dim, settled=settled, settled_on_average=average, runs=runs,
                    distance=[distance])
    rows = [row("b+mf", 8, 7, 10, 10, 0.02), row("b+mf", 8, 10, 10, 10, 0.03),   # the most settled
            row("b", 8, 0, 5, 5, 0.04), row("b", 8, 0, 1, 10, 0.01),            # then on average
            row("m", 4, 2, 2, 2, 0.03), row("m", 4, 2, 2, 3, 0.05),             # then the most runs
            row("b+mf", 100, 0, 0, 1, 0.43), row("b+mf", 100, 0, 0, 1, 0.06),   # then the smaller distance
            row("b+mf rotated", 8, 1, 1, 1, 0.02), row("m", 8, None, None, 1, 0.1)]
    assert rx.best_rows(rows) == [rows[1], rows[2], rows[5], rows[7], rows[8], rows[9]]


@pytest.mark.parametrize("dim", [1, 3])
def test_a_run_keeps_the_first_kept_samples_of_each_law_and_every_coordinates_mean(monkeypatch, dim):
    """final_curves keeps the first KEPT_SAMPLES fresh samples of each law (d > 1: of the
    first MARGINALS coordinates), and in d > 1 the local means of all of them."""
    monkeypatch.setattr(mfcg, "KEPT_SAMPLES", 10)
    monkeypatch.setattr(mfcg, "MARGINALS", 2)
    cfg = mfcg.preset("quick", "b", problem=mfcg.LQProblem(dim=dim), batch=16, n_samples=32, eval_samples=64,
                      langevin_steps=2, eval_langevin_steps=2, steps=2, eval_every=10)
    state = mfcg.train(cfg)
    out = mfcg.final_curves(state, cfg)
    pools = [np.asarray(p, dtype=np.float64) for p in mfcg.fresh_samples(state, cfg, mfcg.STREAM_CURVES)[1:]]
    for tag, pool in zip(("global", "local"), pools):
        np.testing.assert_array_equal(out[f"{tag}_samples"], pool[:10, :2] if dim > 1 else pool[:10, 0])
    if dim > 1:
        np.testing.assert_allclose(out["local_means"], pools[1].mean(axis=0), rtol=1e-12)
