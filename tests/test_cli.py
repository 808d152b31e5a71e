"""run_experiments.py end to end on a tiny budget, resume, parallel reproduce, bad input."""
import json
import os
import re
import shlex
import subprocess
import sys

import numpy as np
import pytest

import autograd_lite as al
import mfcg
import run_experiments as rx
import rundir

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(ROOT, "run_experiments.py")


def cli(*args, cwd):
    """Run the command line in a subprocess; return (exit code, stdout, stderr)."""
    p = subprocess.run([sys.executable, SCRIPT, *map(str, args)], cwd=cwd, capture_output=True,
                       text=True, env=dict(os.environ, OMP_NUM_THREADS="1"))
    return p.returncode, p.stdout, p.stderr


def _json(path):
    with open(path) as fh:
        return json.load(fh)


def _metrics(run_dir):
    """A finished run's metrics, from its one file (run.npz)."""
    return rundir.load_run(str(run_dir), mfcg.PRESETS, mfcg.Config)["metrics"]


def _history(run_dir):
    return rundir.load_run(str(run_dir), mfcg.PRESETS, mfcg.Config)["history"]


TIMING = set(mfcg.TIMING_KEYS) | {"train_seconds", "started_at", "finished_at", "peak_rss_mb"}  # vary run to run


def test_run_then_report_end_to_end(tmp_path):
    for algo, seed in (("b", 0), ("b", 1), ("m", 0)):
        code, _, err = cli("run", "--algo", algo, "--seed", seed, "--steps", 20, "--runs", "runs", cwd=tmp_path)
        assert code == 0, err
    run_dir = tmp_path / "runs" / "quick" / "b-s0"
    assert sorted(os.listdir(run_dir)) == [".lock", "checkpoint.npz", "config.json", "run.npz"]
    metrics = _metrics(run_dir)
    assert metrics["steps"] == 20 and metrics["seed"] == 0
    assert metrics["backend"] == al.backend_name()  # the subprocess chooses as this one does
    assert metrics["mean_error"] == _history(run_dir)[-1]["mean_error"]
    code, _, err = cli("report", "runs/quick/b-s1", "runs/quick/b-s0", "runs/quick/m-s0",  # seeds reversed
                       "--out", "res", cwd=tmp_path)
    assert code == 0, err
    res = tmp_path / "res"
    assert set(os.listdir(res)) == {"RESULTS.md", "summary.json", "learning_curves.png", "settled.png",
                                    "laws.png", "controls.png", "runs.zip"}
    assert list(rundir.read_archive(res / "runs.zip")) == ["quick/b-s1.npz", "quick/b-s0.npz", "quick/m-s0.npz"]
    summary = _json(res / "summary.json")["algorithms"]
    runs_b = [_metrics(tmp_path / "runs" / "quick" / f"b-s{s}") for s in (0, 1)]
    for key in ("mean_error", "control_rmse", "value_rmse"):
        vals = [m[key] for m in runs_b]
        assert summary["b"][key]["mean"] == pytest.approx(np.mean(vals), rel=1e-12)
        assert summary["b"][key]["std"] == pytest.approx(np.std(vals, ddof=1), rel=1e-12)
    table = (res / "RESULTS.md").read_text()
    row = next(line for line in table.splitlines() if line.startswith("| b |"))
    assert f"{np.mean([m['mean_error'] for m in runs_b]):.3f} ± {np.std([m['mean_error'] for m in runs_b], ddof=1):.3f}" in row
    assert summary["m"]["n_runs"] == 1
    # the late window of a 20-step run is its last evaluation, step 20; per run in seed order
    lasts = [_history(tmp_path / "runs" / "quick" / f"b-s{s}")[-1]["local_mean"] for s in (0, 1)]
    late_row = [line for line in table.splitlines() if line.startswith("| b |")][1]
    assert late_row.startswith("| b | " + "; ".join(f"{v:.3f} [{v:.3f}, {v:.3f}]" for v in lasts) + " |")


def test_resume_after_stop_gives_the_uninterrupted_metrics(tmp_path):
    code, _, err = cli("run", "--algo", "drl", "--steps", 40, "--out", "whole", cwd=tmp_path)
    assert code == 0, err
    code, _, err = cli("run", "--algo", "drl", "--steps", 40, "--out", "parts", "--stop-after", 17, cwd=tmp_path)
    assert code == 0 and "stopped at step 17/40" in err
    assert not (tmp_path / "parts" / "run.npz").exists() and (tmp_path / "parts" / "history.json").exists()
    told = shlex.split(err.strip().splitlines()[-1].split("continue with: ")[1])   # the command it names
    assert told[0] == "run_experiments.py" and told[-1] == "--resume"
    code, _, err = cli(*told[1:], cwd=tmp_path)
    assert code == 0, err
    whole, parts = _metrics(tmp_path / "whole"), _metrics(tmp_path / "parts")
    assert not (tmp_path / "parts" / "history.json").exists()  # the stop's, now a part of run.npz
    assert {k: v for k, v in whole.items() if k not in TIMING} == {k: v for k, v in parts.items() if k not in TIMING}


def test_reproduce_runs_processes_in_parallel(tmp_path):
    code, _, err = cli("reproduce", "--seeds", 1, "--steps", 30, "--jobs", 2, "--runs", "runs",
                       "--out", "res", cwd=tmp_path)
    assert code == 0, err
    spans = []
    for algo in mfcg.ALGOS:
        for label in (algo, f"{algo}+mf"):
            m = _metrics(tmp_path / "runs" / "quick" / f"{label}-s0")
            spans.append((m["started_at"], m["finished_at"]))
    overlaps = sum(1 for i, a in enumerate(spans) for b in spans[i + 1:] if a[0] < b[1] and b[0] < a[1])
    assert overlaps >= 1, spans  # with --jobs 2, at least two runs were alive at once
    # both variants, named apart: without and with the mean-field correction
    table = (tmp_path / "res" / "RESULTS.md").read_text()
    for algo in mfcg.ALGOS:
        m = _metrics(tmp_path / "runs" / "quick" / f"{algo}+mf-s0")
        assert m["label"] == f"{algo}+mf" and m["mf_correction"] is True
        assert f"| {algo} |" in table and f"| {algo}+mf |" in table
    # a second reproduce reuses the finished runs instead of overwriting them
    code, _, err = cli("reproduce", "--seeds", 1, "--steps", 30, "--jobs", 2, "--runs", "runs",
                       "--out", "res", cwd=tmp_path)
    assert code == 0 and err.count("is finished; reusing it") == 8
    # ... but only runs made with the same settings: a finished run from an older preset
    # is refused by name, before anything starts, and left as it was
    run_dir = tmp_path / "runs" / "quick" / "m-s0"
    saved = _json(run_dir / "config.json")
    saved["config"]["std_floor"] = 1e-5
    (run_dir / "config.json").write_text(json.dumps(saved))
    before = {p.name: p.read_bytes() for p in run_dir.iterdir()}
    code, _, err = cli("reproduce", "--seeds", 1, "--steps", 30, "--runs", "runs", "--out", "res2", cwd=tmp_path)
    _one_line_error(code, err, "m-s0 was made with different settings (std_floor)")
    assert {p.name: p.read_bytes() for p in run_dir.iterdir()} == before
    assert not (tmp_path / "res2").exists()


def test_a_run_says_how_far_it_is_from_the_equilibrium_its_variant_aims_at(tmp_path):
    """Plain runs are judged at m_mfg, +mf runs at m*; in d > 1, by the worst coordinate."""
    one = {"mean_error": 0.5, "control_rmse": 0.6, "mean_error_mfg": 0.01, "control_rmse_at_mfg": 0.02}
    assert rx.describe_for(False)(one) == "off m_mfg 0.010  control error 0.020"
    assert rx.describe_for(True)(one) == "off m* 0.500  control error 0.600"
    many = {**one, "mean_error_worst": 0.7, "control_rmse_worst": 0.8,
            "mean_error_mfg_worst": 0.03, "control_rmse_at_mfg_worst": 0.04}
    assert rx.describe_for(False)(many) == "worst coordinate off m_mfg 0.030  control error 0.040"
    code, _, err = cli("run", "--algo", "b", "--steps", 20, "--mf", "--dim", 2, "--runs", "runs", cwd=tmp_path)
    assert code == 0, err
    last = _history(tmp_path / "runs" / "quick" / "b+mf_d-2-s0")[-1]
    done = next(line for line in err.splitlines() if " done: " in line)
    assert done.endswith(f"worst coordinate off m* {last['mean_error_worst']:.3f}  "
                         f"control error {last['control_rmse_worst']:.3f}")


def test_each_finished_run_reports_its_own_time(tmp_path, capsys):
    # one at a time: the second run's own time excludes the first's, the total includes it
    nap = [sys.executable, "-c", "import time; time.sleep(1.5)"]
    jobs = [(str(tmp_path / "first"), nap), (str(tmp_path / "second"), nap)]
    assert rundir.run_processes(jobs, 1, "tag") == []
    ends = [line for line in capsys.readouterr().err.splitlines() if ": done " in line]
    assert len(ends) == 2
    own, total = (float(v) for v in re.search(r"second \[(\d+)s, (\d+)s since tag began\]",
                                                ends[1]).groups())
    assert 1 <= own < total


def test_set_changes_one_field_and_reproduce_sweeps_it(tmp_path):
    code, _, err = cli("reproduce", "--algos", "m", "--variants", "mf", "--seeds", 1, "--steps", 10,
                       "--set", "langevin_steps=3,7", "--runs", "runs", "--out", "res", cwd=tmp_path)
    assert code == 0, err
    runs = {L: tmp_path / "runs" / "quick" / f"m+mf_langevin_steps-{L}-s0" for L in (3, 7)}
    for L, run_dir in runs.items():
        saved = _json(run_dir / "config.json")
        assert saved["settings"] == {"langevin_steps": L}
        assert saved["config"]["langevin_steps"] == L and saved["config"]["mf_correction"] is True
        assert _metrics(run_dir)["label"] == f"m+mf langevin_steps={L}"
    table = (tmp_path / "res" / "RESULTS.md").read_text()
    assert "| m+mf langevin_steps=3 |" in table and "| m+mf langevin_steps=7 |" in table
    # the sweep's run is the run that `run --set` makes with the same value
    code, _, err = cli("run", "--algo", "m", "--mf", "--steps", 10, "--set", "langevin_steps=7",
                       "--out", "single", cwd=tmp_path)
    assert code == 0, err
    single, swept = _metrics(tmp_path / "single"), _metrics(runs[7])
    assert {k: v for k, v in single.items() if k not in TIMING} == {k: v for k, v in swept.items() if k not in TIMING}
    # ... and differs from the run with the other value
    assert _metrics(runs[3])["local_mean"] != swept["local_mean"]
    # resuming it without the same --set is refused
    _one_line_error(*cli("run", "--algo", "m", "--mf", "--steps", 10, "--out", "single", "--resume",
                         cwd=tmp_path)[::2], "was made with different settings (langevin_steps; --set {'langevin_steps': 7}, not {})")


def test_set_values_take_the_fields_type():
    assert rx.parse_setting("hutchinson=false") == ("hutchinson", [False])
    assert rx.parse_setting("std_floor=1e-5") == ("std_floor", [1e-5])
    assert rx.parse_setting("langevin_steps=5,20,50", sweep=True) == ("langevin_steps", [5, 20, 50])
    assert rx.file_name("m+mf langevin_steps=5") == "m+mf_langevin_steps-5"
    # reproduce hands each value to `run` as str(value): it must read back as the same value
    for key, value in (("hutchinson", True), ("std_floor", 1e-05), ("grad_clip", 0.0), ("dtype", "float64")):
        assert rx.parse_setting(f"{key}={value}") == (key, [value])
    assert str(rx.parse_setting("grad_clip=-0.0")[1][0]) == "0.0"  # one value, one label
    with pytest.raises(rx.UsageError, match="lr_actor must be finite"):
        rx.parse_setting("lr_actor=inf")
    # the label follows Config's field order, not the order typed
    assert list(rx.parse_settings(["std_floor=0.5", "langevin_steps=5"])) == ["langevin_steps", "std_floor"]


def test_the_fields_only_some_algorithms_read_are_the_ones_each_trainer_reads(monkeypatch):
    """Trace which Config fields each trainer reads in a few steps (evaluation included),
    on two paths: the steady preset as it is, and the readable definitions on the rotated
    problem with every switch the other way. A field mfcg.READ_ONLY_BY leaves out for an
    algorithm is never read by it; every other field is read on one of the paths, so a
    --set the command line lets through changes the run."""
    names = set(mfcg.Config.__dataclass_fields__)
    read, getattribute = set(), mfcg.Config.__getattribute__

    def traced(self, name):
        if name in names:
            read.add(name)
        return getattribute(self, name)

    for algo in mfcg.ALGOS:
        tiny = dict(steps=2, eval_every=2, batch=1 if algo == "ac" else 8, minibatch=4, n_samples=16,
                    langevin_steps=2, eval_samples=16, eval_langevin_steps=2, rollout=2)
        base = mfcg.preset("steady", algo, **tiny)
        other = dict(readable=True, problem=mfcg.rotated_problem(2), td_control_variate=not base.td_control_variate,
                     hutchinson=not base.hutchinson, antithetic=algo != "ac" and not base.antithetic,
                     score_warmup=0 if base.score_warmup else 2, langevin_every=2, target_every=0 if algo == "drl" else 1,
                     restart_beyond=3.0, ppo_minibatches=2 if algo == "drl" else 1,
                     actor_gradient="score" if algo == "drl" else "pathwise", adv_norm=algo == "drl")
        read_by_algo = set()
        for cfg in (base, mfcg.preset("steady", algo, **tiny, **other)):
            read.clear()
            monkeypatch.setattr(mfcg.Config, "__getattribute__", traced)
            mfcg.train(cfg)
            monkeypatch.undo()
            read_by_algo |= read
        ignored = {k for k, readers in mfcg.READ_ONLY_BY.items() if algo not in readers}
        assert names - read_by_algo == ignored, algo


def test_resume_refuses_an_equal_config_made_under_another_label(tmp_path):
    """--set langevin_steps=10 gives the quick preset's own Config, but another label; and
    paper with --set langevin_steps=10 is lean's Config under another preset."""
    code, _, err = cli("run", "--algo", "m", "--steps", 10, "--stop-after", 5, "--out", "r", cwd=tmp_path)
    assert code == 0, err
    _one_line_error(*cli("run", "--algo", "m", "--steps", 10, "--out", "r", "--resume",
                         "--set", "langevin_steps=10", cwd=tmp_path)[::2], "--set {}, not {'langevin_steps': 10}")
    code, _, err = cli("run", "--algo", "m", "--preset", "paper", "--steps", 2, "--stop-after", 1,
                       "--set", "langevin_steps=10", "--out", "p", cwd=tmp_path)
    assert code == 0, err
    _one_line_error(*cli("run", "--algo", "m", "--preset", "lean", "--steps", 2, "--out", "p", "--resume",
                         cwd=tmp_path)[::2], "preset paper, not lean")


def _one_line_error(code, err, match):
    assert code != 0
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("run_experiments.py: error:"), err
    assert match in lines[0], lines[0]


@pytest.mark.parametrize("args, match", [
    (("run", "--algo", "sac"), "invalid choice: 'sac'"),
    (("run", "--algo", "b", "--preset", "huge"), "invalid choice: 'huge'"),
    (("run", "--algo", "b", "--steps", 0), "--steps must be a positive integer"),
    (("report", "nowhere"), "nowhere is not a finished run (it does not exist)"),
    (("run", "--algo", "b", "--out", "x", "--resume"), "has no checkpoint.npz to resume"),
    (("frobnicate",), "invalid choice: 'frobnicate'"),
    (("run", "--algo", "m", "--set", "langevin_step=5"), "Config has no field 'langevin_step'"),
    (("run", "--algo", "m", "--set", "seed=3"), "seed has its own option, not --set"),
    (("run", "--algo", "m", "--set", "problem=1"), "the problem's settings are not changed"),
    (("run", "--algo", "m", "--set", "langevin_steps=five"), "langevin_steps takes an integer, got 'five'"),
    (("run", "--algo", "m", "--set", "langevin_steps=0"), "langevin_steps must be a positive integer, got 0"),
    (("run", "--algo", "m", "--set", "langevin_steps"), "expected KEY=VALUE"),
    (("run", "--algo", "m", "--set", "eps_langevin=1", "--set", "eps_langevin=2"), "eps_langevin is set twice"),
    (("reproduce", "--algos", "b,sac"), "--algos b,sac: expected distinct names"),
    (("reproduce", "--algos", ""), "--algos : expected distinct names"),
    (("memory", "--preset", "dims"), "invalid choice: 'dims'"),
    (("reproduce", "--set", "langevin_steps=5,5"), "a value is repeated"),
    (("run", "--algo", "drl", "--set", "minibatch=512"), "--set minibatch: drl does not read it (only m); leave drl out"),
    (("reproduce", "--algos", "b,m", "--set", "langevin_every=5,10"), "--set langevin_every: b does not read it (only m)"),
    (("run", "--algo", "m", "--set", "rollout=64"), "--set rollout: m does not read it (only drl)"),
    (("run", "--algo", "m", "--preset", "single", "--set", "rollout=64"), "single"),   # the preset's word first
    (("memory", "--reps", 1), "--reps must be at least 2"),
    (("memory", "--horizon", 0), "--horizon must be a positive integer"),
])
def test_bad_input_is_one_line(tmp_path, args, match):
    _one_line_error(*cli(*args, cwd=tmp_path)[::2], match)


def test_existing_output_is_never_overwritten(tmp_path):
    code, _, err = cli("run", "--algo", "m", "--steps", 10, "--out", "r", cwd=tmp_path)
    assert code == 0, err
    before = (tmp_path / "r" / "run.npz").read_bytes()
    _one_line_error(*cli("run", "--algo", "m", "--steps", 10, "--out", "r", cwd=tmp_path)[::2],
                    "r holds a finished run (results are never overwritten)")
    assert (tmp_path / "r" / "run.npz").read_bytes() == before
    # a directory that is not a run
    (tmp_path / "junk").mkdir()
    _one_line_error(*cli("report", "junk", cwd=tmp_path)[::2], "junk is not a finished run (has no run.npz)")
    # resuming with different settings is refused
    _one_line_error(*cli("run", "--algo", "m", "--steps", 12, "--out", "r", "--resume", cwd=tmp_path)[::2],
                    "was made with different settings (steps)")


def test_report_refuses_mixed_presets_unless_asked(tmp_path):
    for preset in ("quick", "paper"):
        code, _, err = cli("run", "--algo", "m", "--preset", preset, "--steps", 2, "--out", preset, cwd=tmp_path)
        assert code == 0, err
    _one_line_error(*cli("report", "quick", "paper", "--out", "res", cwd=tmp_path)[::2], "the runs mix presets")
    code, _, err = cli("report", "quick", "paper", "--out", "res", "--allow-mixed-presets", cwd=tmp_path)
    assert code == 0, err
    assert set(_json(tmp_path / "res" / "summary.json")["algorithms"]) == {"m [quick]", "m [paper]"}


def test_time_to_accuracy_is_where_the_error_stays_below():
    """The first crossing (2.5 s) is a transient: the error climbs back; it stays below from
    the evaluation at 6 s. An error above the threshold at the end: not reached."""
    import run_experiments as rx
    history = [{"wall_seconds": 1.0, "step": 10, "control_rmse": 0.5},
               {"wall_seconds": 2.5, "step": 20, "control_rmse": 0.29},
               {"wall_seconds": 4.0, "step": 30, "control_rmse": 0.4},
               {"wall_seconds": 6.0, "step": 40, "control_rmse": 0.1},
               {"wall_seconds": 7.0, "step": 50, "control_rmse": 0.2}]
    assert rx.time_to_accuracy(history, "control_rmse", 0.3) == (6.0, 40)
    assert rx.time_to_accuracy(history, "control_rmse", 0.15) is None
    assert rx.time_to_accuracy(history[:2], "control_rmse", 0.3) == (2.5, 20)


def test_late_window_is_the_last_quarter_of_the_run():
    """A 100-step run evaluated unevenly: the window is the steps after 75 (80, 90, 100),
    where the local mean is 0.2, 0.3 and 0.9; step 75 itself and the earlier 5.0s are left
    out. Within 0.1: 0.2 and 0.3 of m* = 0.25; none of m_mfg = 0.7 (0.9 is 0.2 away). With
    no evaluation in the window, the last one stands for it."""
    import run_experiments as rx
    steps = [10, 20, 30, 40, 50, 74, 75, 80, 90, 100]
    means = [5.0] * 7 + [0.2, 0.3, 0.9]
    history = [{"step": n, "local_mean": m} for n, m in zip(steps, means)]
    w = rx.late_window(history, 100, m_star=0.25, m_mfg=0.7)
    assert w["evaluations"] == 3 and w["median"] == pytest.approx(0.3)
    assert (w["q1"], w["q3"]) == (pytest.approx(0.25), pytest.approx(0.6))
    assert w["near_m_star"] == pytest.approx(2 / 3) and w["near_m_mfg"] == 0.0
    assert w["agents_sd"] is None and w["agents_mean"] is None  # a history without the agents' mean
    w = rx.late_window(history[:2], 100, m_star=0.25, m_mfg=0.7)
    assert w["evaluations"] == 1 and w["median"] == 5.0
    for h, a in zip(history, [9.0] * 7 + [0.1, 0.3, 0.5]):  # the agents' own mean, window only
        h["agents_mean"] = a
    w = rx.late_window(history, 100, m_star=0.25, m_mfg=0.7)
    assert w["agents_sd"] == pytest.approx(np.std([0.1, 0.3, 0.5]))
    assert w["agents_mean"] == pytest.approx(0.3)


def test_settled_means_every_late_evaluation_within_both_thresholds():
    """A 100-step run: the late window is steps 80, 90, 100. At m* it is within 0.05 and
    its control within 0.1 at all three: settled, from step 80 (step 70 misses on the
    control; the first crossing at step 20 is a transient). One late control error of 0.1
    (not below) unsettles it. At m_mfg the same run is never within reach."""
    import run_experiments as rx
    rows = [(20, 0.01, 0.05), (40, 0.2, 0.05), (70, 0.01, 0.3), (80, 0.04, 0.09), (90, 0.0, 0.0),
            (100, 0.049, 0.099)]
    history = [{"step": n, "mean_error": d, "control_rmse": c, "mean_error_mfg": 0.47,
                "control_rmse_at_mfg": 0.6} for n, d, c in rows]
    assert rx.settled(history, 100, "m*") and rx.settled_from(history, "m*") == 80
    assert not rx.settled(history, 100, "m_mfg") and rx.settled_from(history, "m_mfg") is None
    history[-2]["control_rmse"] = 0.1
    assert not rx.settled(history, 100, "m*") and rx.settled_from(history, "m*") == 100
    assert rx.settled(history[:2], 100, "m*") is False  # no late evaluation: the last one
    del history[0]["control_rmse_at_mfg"]                # a run made before it was recorded
    assert rx.settled(history, 100, "m_mfg") is None and rx.settled_from(history, "m_mfg") is None


def test_settled_on_average_judges_the_late_window_s_means():
    """A local mean that swings ±0.08 around m* = 0.25 over the late window (steps 80–100),
    with control errors 0.05, 0.12, 0.07: not settled (two evaluations 0.08 away, one control
    error above 0.1), but settled on average (mean 0.25, mean control error 0.08). Shift the
    swing by 0.06, or raise the control errors' mean above 0.1: not on average either."""
    import run_experiments as rx
    m_star = 0.25
    rows = [(40, 1.0, 0.5), (80, m_star - 0.08, 0.05), (90, m_star + 0.08, 0.12), (100, m_star, 0.07)]
    history = [{"step": n, "local_mean": x, "mean_error": abs(x - m_star), "control_rmse": c}
               for n, x, c in rows]
    assert not rx.settled(history, 100, "m*")
    assert rx.settled_on_average(history, 100, "m*", m_star)
    assert not rx.settled_on_average(history, 100, "m*", m_star + 0.06)
    history[-1]["control_rmse"] = 0.14   # the mean control error is now 0.103
    assert not rx.settled_on_average(history, 100, "m*", m_star)
    assert rx.settled_on_average(history, 100, "m_mfg", 0.7) is None  # no Nash control error recorded


def test_memory_writes_its_table_and_never_overwrites_it(tmp_path):
    """`memory` on a tiny budget: one row per rate level, w finite; a second run into the
    same directory is refused and leaves the first measurement as it was."""
    args = ("memory", "--warmup", 5, "--reps", 2, "--horizon", 4, "--langevin-steps", 2, "--out", "mem")
    code, _, err = cli(*args, cwd=tmp_path)
    assert code == 0, err
    saved = _json(tmp_path / "mem" / "memory.json")
    assert [r["gain"] for r in saved["rows"]] == [0.25, 1.0, 10.0]
    assert all(np.isfinite(r[k]) and len(r[f"{k}_per_fork"]) == 2 for r in saved["rows"] for k in ("w", "w_global"))
    sol = mfcg.LQSolution.of(mfcg.LQProblem())
    assert all(r["mu_plain"] == sol.mean_own_influence(r["w"], r["w_global"]) for r in saved["rows"])
    before = (tmp_path / "mem" / "memory.json").read_bytes()
    _one_line_error(*cli(*args, cwd=tmp_path)[::2], "mem holds a memory measurement already")
    assert (tmp_path / "mem" / "memory.json").read_bytes() == before
