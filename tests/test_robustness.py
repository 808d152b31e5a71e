"""A run directory never loses work: restartable after any death, locked against a second
process, and one line (exit 2, or 130 for an interrupt) for every bad input or fault."""
import errno
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

import mfcg
import run_experiments as rx
import rundir

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(ROOT, "run_experiments.py")
# a quick-preset B run small enough for a step to take about a millisecond
TINY = ["--set", "batch=16", "--set", "n_samples=32", "--set", "eval_samples=64",
        "--set", "eval_langevin_steps=5", "--set", "eval_every=5", "--set", "checkpoint_every=5"]


def cli(*args, cwd):
    p = subprocess.run([sys.executable, SCRIPT, *map(str, args)], cwd=cwd, capture_output=True,
                       text=True, env=dict(os.environ, OMP_NUM_THREADS="1"))
    return p.returncode, p.stdout, p.stderr


def start(*args, cwd):
    return subprocess.Popen([sys.executable, SCRIPT, *map(str, args)], cwd=cwd, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=dict(os.environ, OMP_NUM_THREADS="1"))


def one_line(err):
    """The error output is one line, with no traceback."""
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def wait_for(predicate, timeout=60.0):
    t0 = time.time()
    while not predicate():
        assert time.time() - t0 < timeout, "timed out"
        time.sleep(0.02)


def holder(run_dir):
    """The pid written into a run directory's lock once a process holds it, else None."""
    try:
        text = open(os.path.join(run_dir, ".lock")).read()
    except OSError:
        return None
    return int(text.split()[1]) if text.startswith("pid ") else None


def tiny_run(tmp_path, *extra, out="r", steps=10):
    return cli("run", "--algo", "b", "--steps", steps, "--out", out, *TINY, *extra, cwd=tmp_path)


# --- 1. a run that dies before its first checkpoint -----------------------------------------

@pytest.mark.parametrize("resume", [False, True])
def test_a_run_killed_before_its_first_checkpoint_starts_again(tmp_path, resume):
    """kill -9 after config.json is written but before any checkpoint: the same command (with
    or without --resume, as the Slurm script of docs/running.md does) starts the run from step 0."""
    args = ["run", "--algo", "b", "--steps", 5000, "--out", "r", *TINY[:-2], "--set", "checkpoint_every=5000"]
    proc = start(*args, cwd=tmp_path)
    wait_for(lambda: holder(tmp_path / "r") is not None and (tmp_path / "r" / "config.json").exists())
    proc.kill()
    proc.wait()
    assert not (tmp_path / "r" / "checkpoint.npz").exists()
    code, _, err = cli(*args, *(["--resume"] if resume else []), "--stop-after", 5, cwd=tmp_path)
    assert code == 0, err
    assert "never reached its first checkpoint; starting it from step 0" in err
    state, _ = mfcg.load_checkpoint(str(tmp_path / "r" / "checkpoint.npz"))
    assert state["step"] == 5


def test_a_run_that_never_started_is_not_restarted_with_other_settings(tmp_path):
    code, _, err = tiny_run(tmp_path, "--stop-after", 1)
    assert code == 0, err
    os.remove(tmp_path / "r" / "checkpoint.npz")
    os.remove(tmp_path / "r" / "history.json")
    code, _, err = tiny_run(tmp_path, steps=12)
    assert code == 2 and "never started, made with different settings (steps)" in one_line(err)


def test_divergence_at_step_0_leaves_a_restartable_directory(tmp_path):
    """Diverged before the first checkpoint: one line, history.json, and the same command
    runs again (and diverges again, deterministically) instead of 'already exists'."""
    for attempt in range(2):
        code, _, err = tiny_run(tmp_path, "--set", "lr_actor=1e6", "--set", "lr_critic=1e6")
        assert code == 2 and "Traceback" not in err
        line = one_line(err) if attempt == 0 else err.strip().splitlines()[-1]
        if attempt == 1:
            assert "never reached its first checkpoint; starting it from step 0" in err
        assert "diverges" in line or "non-finite" in line, line
        assert "no checkpoint had been written" in line
        assert (tmp_path / "r" / "history.json").exists()


# --- 2. one process per run directory --------------------------------------------------------

def test_a_second_process_on_a_run_directory_is_refused(tmp_path):
    args = ["run", "--algo", "b", "--steps", 100000, "--out", "r", *TINY]
    first = start(*args, cwd=tmp_path)
    try:
        wait_for(lambda: holder(tmp_path / "r") == first.pid)
        for extra in ([], ["--resume"]):
            code, _, err = cli(*args, *extra, cwd=tmp_path)
            assert code == 2
            assert f"r is in use by pid {first.pid} on" in one_line(err)
        wait_for(lambda: (tmp_path / "r" / "checkpoint.npz").exists())
    finally:
        first.send_signal(signal.SIGINT)
        _, err = first.communicate(timeout=60)
    assert first.returncode == 130, err
    code, _, err = cli(*args, "--resume", "--stop-after", 5, cwd=tmp_path)  # the lock went with it
    assert code == 0, err


# --- 3. one line for every bad input --------------------------------------------------------------

def test_bad_paths_and_values_are_one_line(tmp_path):
    (tmp_path / "afile").write_text("x")
    cases = [
        (["run", "--algo", "b", "--seed", -1], "--seed must be a non-negative integer, got -1"),
        (["run", "--algo", "b", "--out", "afile"], "afile is a file, not a run directory"),
        (["run", "--algo", "b", "--out", "afile/below"], "afile/below"),
        (["run", "--algo", "b", "--runs", "afile"], "afile"),
        (["run", "--algo", "b", "--set", "hidden_actor=100000000000000000000"], "hidden_actor must be below 2**31"),
        (["report", "afile"], "afile is unreadable"),
        (["bench", "--algo", "b", "--steps", 1, "--out", "afile"], "--out afile is a file"),
        (["reproduce", "--seeds", 1, "--runs", "afile", "--algos", "b"], "afile"),
    ]
    for args, expected in cases:
        code, _, err = cli(*args, cwd=tmp_path)
        assert code == 2, (args, err)
        assert expected in one_line(err), (args, err)


def test_bench_checks_its_output_before_it_runs(tmp_path):
    (tmp_path / "afile").write_text("x")
    t0 = time.time()
    code, _, err = cli("bench", "--out", "afile", cwd=tmp_path)  # all four algorithms if it ran
    assert code == 2 and "bench:" not in err and time.time() - t0 < 20


def _break(path, how):
    data = path.read_bytes()
    if how == "empty":
        path.write_bytes(b"")
    elif how == "truncated":
        path.write_bytes(data[: len(data) // 2])
    elif how == "bit-flipped":
        i = len(data) // 3
        path.write_bytes(data[:i] + bytes([data[i] ^ 0x10]) + data[i + 1:])
    elif how == "not json":
        path.write_text("{not json")
    elif how == "empty object":
        path.write_text("{}")
    elif how == "missing":
        path.unlink()


NOT_A_CHECKPOINT = "r/checkpoint.npz is not a checkpoint of this project ("
NOT_A_CONFIG = "r/config.json is not a run's config.json"


@pytest.mark.parametrize("file, how, expected", [
    ("checkpoint.npz", "empty", NOT_A_CHECKPOINT), ("checkpoint.npz", "truncated", NOT_A_CHECKPOINT),
    ("checkpoint.npz", "bit-flipped", NOT_A_CHECKPOINT), ("config.json", "missing", "has no config.json"),
    ("config.json", "not json", NOT_A_CONFIG), ("config.json", "empty object", NOT_A_CONFIG)])
def test_a_broken_run_file_is_one_line_on_resume(tmp_path, file, how, expected):
    code, _, err = tiny_run(tmp_path, "--stop-after", 5)
    assert code == 0, err
    _break(tmp_path / "r" / file, how)
    code, _, err = tiny_run(tmp_path, "--resume")
    assert code == 2
    assert expected in one_line(err)


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """Two finished tiny runs and a pristine copy of their files."""
    root = tmp_path_factory.mktemp("finished")
    for seed in (0, 1):
        code, _, err = cli("run", "--algo", "b", "--steps", 10, "--seed", seed, "--out", f"b{seed}", *TINY, cwd=root)
        assert code == 0, err
    return root


def _copy_run(src, dst):
    import shutil
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns(".lock"))
    return dst


def _kept(folder):
    """{PRESET/NAME.npz: bytes}: the runs a report in `folder` keeps in its archive."""
    return rundir.read_archive(folder / rundir.RUNS_ARCHIVE)


def _old_layout(run, dst):
    """A finished run as the four files runs had before run.npz (config.json, metrics.json,
    history.json, curves.npz), made from its run.npz."""
    saved, metrics, history, curves = rundir.unpack_run(str(run / "run.npz"))
    dst.mkdir(parents=True)
    for name, obj in (("config.json", saved), ("metrics.json", metrics), ("history.json", history)):
        (dst / name).write_text(json.dumps(obj, indent=1))
    np.savez(dst / "curves.npz", **curves)
    return dst


@pytest.mark.parametrize("how", ["empty", "truncated", "bit-flipped", "another npz"])
def test_report_of_a_broken_run_is_one_line(tmp_path, finished, how):
    run = _copy_run(finished / "b0", tmp_path / "b0")
    if how == "another npz":
        np.savez(run / "run.npz", a=np.zeros(3))
    else:
        _break(run / "run.npz", how)
    code, _, err = cli("report", "b0", "--out", "res", cwd=tmp_path)
    assert code == 2
    assert "b0/run.npz is unreadable" in one_line(err)
    assert not (tmp_path / "res").exists()


@pytest.mark.parametrize("file, how", [("metrics.json", "not json"), ("metrics.json", "empty object"),
                                       ("history.json", "not json"), ("history.json", "empty object"),
                                       ("config.json", "not json"), ("curves.npz", "truncated")])
def test_report_of_a_broken_old_run_is_one_line(tmp_path, finished, file, how):
    run = _old_layout(finished / "b0", tmp_path / "b0")
    _break(run / file, how)
    code, _, err = cli("report", "b0", "--out", "res", cwd=tmp_path)
    assert code == 2
    assert ("b0 is unreadable" in one_line(err) or "b0 is incomplete" in one_line(err)) and file in one_line(err)


def test_a_run_of_the_old_layout_reports_as_its_one_file(tmp_path, finished):
    """A run of four files reports as the same run in one file: the same table, and its
    copy is the one file, byte for byte."""
    _copy_run(finished / "b0", tmp_path / "new")
    _old_layout(finished / "b0", tmp_path / "old")
    for name in ("new", "old"):
        code, _, err = cli("report", name, "--out", f"res-{name}", cwd=tmp_path)
        assert code == 0, err
    assert (tmp_path / "res-old" / "RESULTS.md").read_text() == (tmp_path / "res-new" / "RESULTS.md").read_text()
    assert _kept(tmp_path / "res-old")["quick/old.npz"] == _kept(tmp_path / "res-new")["quick/new.npz"]


@pytest.mark.parametrize("layout", ["a file per run", "four files per run"])
def test_a_report_of_an_older_layout_is_converted_in_place(tmp_path, finished, layout, monkeypatch):
    """A report whose copies an older version kept one by one (runs/quick/b0.npz, or four
    files in runs/quick/b0/), reported again into its own folder (--again, or from the
    copies): the copies go into its one archive, the old files and folders go, the table
    stays; stopped while removing them, it lists those left, and the next report removes
    them."""
    for seed in (0, 1):
        _copy_run(finished / f"b{seed}", tmp_path / f"b{seed}")
    assert cli("report", "b0", "b1", "--out", "res", cwd=tmp_path)[0] == 0
    res = tmp_path / "res"
    archive, table, members = (res / "runs.zip").read_bytes(), (res / "RESULTS.md").read_text(), _kept(res)
    summary = json.loads((res / "summary.json").read_text())
    (res / "runs.zip").unlink()
    summary["files"].remove("runs.zip")
    for seed in (0, 1):  # as the older version kept them, listed by its summary
        if layout == "a file per run":
            (res / "runs/quick").mkdir(parents=True, exist_ok=True)
            (res / f"runs/quick/b{seed}.npz").write_bytes(members[f"quick/b{seed}.npz"])
            summary["files"].append(f"runs/quick/b{seed}.npz")
        else:
            _old_layout(finished / f"b{seed}", res / f"runs/quick/b{seed}")
            summary["files"] += [f"runs/quick/b{seed}/{f}" for f in rundir.OLD_RUN_FILES]
    if layout == "a file per run":
        summary["copies"] = ["runs/quick/b0.npz", "runs/quick/b1.npz"]
        args = ("report", "--again", "res")
    else:  # that version listed no copies
        del summary["copies"]
        args = ("report", "res/runs/quick/b0", "res/runs/quick/b1", "--out", "res")
    (res / "summary.json").write_text(json.dumps(summary))
    real_remove, removed = os.remove, []

    def stop_after_one(path):   # Ctrl-C while the older files are being removed
        if f"{os.sep}runs{os.sep}" in str(path):
            if removed:
                raise KeyboardInterrupt
            removed.append(path)
        real_remove(path)
    monkeypatch.setattr(rundir.os, "remove", stop_after_one)
    monkeypatch.chdir(tmp_path)
    assert rx.main([*args]) == 130
    monkeypatch.undo()
    assert (res / "runs.zip").read_bytes() == archive and len(removed) == 1
    listed = json.loads((res / "summary.json").read_text())["files"]
    assert "runs.zip" in listed and sum(f.startswith("runs/") for f in listed) > 1   # the rest still listed
    code, _, err = cli("report", "--again", "res", cwd=tmp_path)   # the next report removes the rest
    assert code == 0, err
    assert (res / "runs.zip").read_bytes() == archive
    assert not (res / "runs").exists()
    assert (res / "RESULTS.md").read_text() == table
    assert json.loads((res / "summary.json").read_text())["copies"] == ["runs.zip/quick/b0.npz", "runs.zip/quick/b1.npz"]


def test_report_again_remakes_a_report_from_its_copies(tmp_path, finished):
    """`report --again` reads the copies a report lists, in its order, and writes the same
    report; a folder without a report, or a summary listing no copies, is one line."""
    for seed in (0, 1):
        _copy_run(finished / f"b{seed}", tmp_path / f"b{seed}")
    assert cli("report", "b1", "b0", "--out", "res", cwd=tmp_path)[0] == 0
    before = {f: (tmp_path / "res" / f).read_bytes() for f in ("RESULTS.md", "laws.png", "runs.zip")}
    summary = json.loads((tmp_path / "res" / "summary.json").read_text())
    assert summary["copies"] == ["runs.zip/quick/b1.npz", "runs.zip/quick/b0.npz"]
    code, _, err = cli("report", "--again", "res", cwd=tmp_path)
    assert code == 0, err
    assert {f: (tmp_path / "res" / f).read_bytes() for f in before} == before
    again = json.loads((tmp_path / "res" / "summary.json").read_text())
    assert again["algorithms"] == summary["algorithms"] and again["copies"] == summary["copies"]
    (tmp_path / "empty").mkdir()
    _one_line_error = (lambda args, match: (lambda r: r[0] == 2 and match in one_line(r[2]))(cli(*args, cwd=tmp_path)))
    assert _one_line_error(("report", "--again", "empty"), "empty holds no report (no summary.json)")
    assert _one_line_error(("report", "--again", "nowhere"), "nowhere does not exist")
    assert _one_line_error(("report", "--again", "res", "--out", "x"), "--again reports each folder into itself")
    del summary["copies"]
    (tmp_path / "res" / "summary.json").write_text(json.dumps(summary))
    assert _one_line_error(("report", "--again", "res"), "res/summary.json lists no copies of its runs")


def test_report_draws_the_figures_it_is_told_and_keeps_to_them(tmp_path, finished):
    """--figures draws those figures only and removes the ones an earlier report there drew;
    a report into that folder again, told nothing (--again too), draws the same ones; 'none'
    draws none; an unknown name is one line before anything changes."""
    _copy_run(finished / "b0", tmp_path / "b0")
    pngs = lambda: sorted(f for f in os.listdir(tmp_path / "res") if f.endswith(".png"))  # noqa: E731
    assert cli("report", "b0", "--out", "res", cwd=tmp_path)[0] == 0
    assert pngs() == ["controls.png", "laws.png", "learning_curves.png", "settled.png"]  # a new folder: all
    code, _, err = cli("report", "b0", "--out", "res", "--figures", "settled,laws", cwd=tmp_path)
    assert code == 0, err
    assert pngs() == ["laws.png", "settled.png"]
    summary = json.loads((tmp_path / "res" / "summary.json").read_text())
    assert [f for f in summary["files"] if f.endswith(".png")] == ["laws.png", "settled.png"]
    assert cli("report", "b0", "--out", "res", cwd=tmp_path)[0] == 0
    assert pngs() == ["laws.png", "settled.png"]
    assert cli("report", "--again", "res", cwd=tmp_path)[0] == 0
    assert pngs() == ["laws.png", "settled.png"]
    assert cli("report", "--again", "res", "--figures", "none", cwd=tmp_path)[0] == 0
    assert pngs() == [] and (tmp_path / "res" / "RESULTS.md").exists()
    assert cli("report", "--again", "res", cwd=tmp_path)[0] == 0
    assert pngs() == []
    code, _, err = cli("report", "--again", "res", "--figures", "laws,law", cwd=tmp_path)
    assert code == 2 and "--figures: expected 'none' or distinct names from" in one_line(err)
    assert pngs() == []


def test_report_out_that_is_a_file(tmp_path, finished):
    _copy_run(finished / "b0", tmp_path / "b0")
    (tmp_path / "afile").write_text("x")
    code, _, err = cli("report", "b0", "--out", "afile", cwd=tmp_path)
    assert code == 2 and "--out afile is a file, not a directory" in one_line(err)


def test_a_refused_command_leaves_nothing_behind(tmp_path):
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "a.txt").write_text("mine")
    code, _, err = cli("run", "--algo", "b", "--steps", 10, "--out", "notes", cwd=tmp_path)
    assert code == 2 and "notes already exists, is not empty and holds no run" in one_line(err)
    assert sorted(p.name for p in (tmp_path / "notes").iterdir()) == ["a.txt"]
    code, _, err = cli("run", "--algo", "b", "--resume", "--out", "new", cwd=tmp_path)
    assert code == 2 and "new has no checkpoint.npz to resume" in one_line(err)
    code, _, err = cli("bench", "--preset", "single", "--algo", "b", "--out", "bench", cwd=tmp_path)
    assert code == 2 and "the single preset is for ac only" in one_line(err)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes"]


def test_a_report_into_a_run_s_directory_is_refused(tmp_path, finished):
    for seed in (0, 1):
        _copy_run(finished / f"b{seed}", tmp_path / f"b{seed}")
    before = sorted(p.name for p in (tmp_path / "b0").iterdir())
    code, _, err = cli("report", "b1", "--out", "b0", cwd=tmp_path)
    assert code == 2 and "--out b0 holds a run (run.npz): choose another --out" in one_line(err)
    assert sorted(p.name for p in (tmp_path / "b0").iterdir()) == before


def test_unwritable_output_is_one_line(tmp_path, monkeypatch, capsys):
    """A read-only file system (simulated: root ignores permission bits)."""
    def refuse(*args, **kwargs):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS), "runs/quick/b-s0")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(rx.os, "makedirs", refuse)
    assert rx.main(["run", "--algo", "b"]) == 2
    assert one_line(capsys.readouterr().err) == "run_experiments.py: error: runs/quick/b-s0: Read-only file system"


def test_running_out_of_memory_is_one_line(tmp_path, monkeypatch, capsys):
    """A size too large for the machine (say --set hidden_critic=1000000000) fails in NumPy's
    allocator; simulated here, since really allocating it would take the machine's memory."""
    def too_big(*args, **kwargs):
        raise MemoryError("Unable to allocate 954. GiB for an array with shape (1000, 1000000000)")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(rx.mfcg, "init_state", too_big)
    assert rx.main(["run", "--algo", "b", "--out", "r"]) == 2
    assert "out of memory (MemoryError: Unable to allocate 954. GiB" in one_line(capsys.readouterr().err)


def test_ctrl_c_while_loading_is_not_a_traceback(tmp_path):
    """The signal lands once NumPy's library is mapped into the process (so after the
    handler is installed, during or just after the imports of NumPy and mfcg), however
    long the interpreter took to start on a busy machine."""
    proc = start("run", "--algo", "b", "--out", "r", cwd=tmp_path)
    maps, deadline = f"/proc/{proc.pid}/maps", time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        if not os.path.exists(maps):  # not Linux: the interpreter's start-up is quick enough
            time.sleep(0.15)
            break
        with open(maps) as fh:
            if "numpy" in fh.read():
                break
        time.sleep(0.002)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and "Traceback" not in err, err
    assert "interrupted" in err.strip().splitlines()[-1]


# --- 4. divergence ----------------------------------------------------------------------------------

def test_a_state_out_of_bounds_stops_the_run_and_is_never_checkpointed(tmp_path):
    """Finite but absurd (|x| = 1e8: the run diverges): stopped at the next check, the kept
    checkpoint is the last sane one, and resuming from it works."""
    cfg = mfcg.preset("quick", "b", batch=16, n_samples=32, eval_samples=64, eval_langevin_steps=5,
                      steps=20, eval_every=5, checkpoint_every=5)
    state = mfcg.train(cfg, run_dir=str(tmp_path), until=5)
    state["x"][0, 0] = 1e8
    with pytest.raises(FloatingPointError, match=r"agents' states x reached \|1e\+08\| > 1e\+06 in steps 6–10"):
        mfcg.train(cfg, state, run_dir=str(tmp_path))
    good, _ = mfcg.load_checkpoint(str(tmp_path / "checkpoint.npz"))
    assert good["step"] == 5 and np.abs(good["x"]).max() < 10
    assert mfcg.train(cfg, good)["step"] == 20


# --- 5. a full disk ----------------------------------------------------------------------------------

def test_a_failed_checkpoint_write_leaves_the_last_one_and_no_temporary_file(tmp_path, monkeypatch):
    cfg = mfcg.preset("quick", "b", batch=16, n_samples=32, eval_samples=64, eval_langevin_steps=5,
                      steps=20, eval_every=5, checkpoint_every=5)
    state = mfcg.train(cfg, run_dir=str(tmp_path), until=5)
    before = (tmp_path / "checkpoint.npz").read_bytes()
    real = np.savez

    def disk_full(fh, **arrays):
        real(fh, **{k: arrays[k] for k in list(arrays)[:3]})  # some bytes reach the disk
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(mfcg.np, "savez", disk_full)
    with pytest.raises(OSError, match="No space left on device"):
        mfcg.train(cfg, state, run_dir=str(tmp_path))
    assert sorted(os.listdir(tmp_path)) == ["checkpoint.npz"]
    assert (tmp_path / "checkpoint.npz").read_bytes() == before


def test_a_full_disk_is_one_line_on_the_command_line(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)

    def disk_full(fh, **arrays):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), "r/checkpoint.npz.tmp")

    monkeypatch.setattr(mfcg.np, "savez", disk_full)
    assert rx.main(["run", "--algo", "b", "--steps", "10", "--out", "r", *TINY]) == 2
    assert one_line(capsys.readouterr().err).endswith("r/checkpoint.npz.tmp: No space left on device")
    assert not (tmp_path / "r" / "checkpoint.npz.tmp").exists()


# --- 6. the library refuses wrong types ------------------------------------------------------------

@pytest.mark.parametrize("kwargs, match", [
    (dict(mf_correction="False"), "mf_correction must be true or false"),
    (dict(schedule="false"), "schedule must be true or false"),
    (dict(hutchinson=1), "hutchinson must be true or false"),
    (dict(seed=-1), "seed must be >= 0"),
    (dict(seed=1.5), "seed must be an integer, got 1.5"),
    (dict(seed="3"), "seed must be an integer, got '3'"),
    (dict(batch=True), "batch must be an integer, got True"),
    (dict(lr_actor=float("inf")), "lr_actor must be a finite number, got inf"),
    (dict(lr_actor=float("nan")), "lr_actor must be a finite number, got nan"),
    (dict(lr_actor="0.1"), "lr_actor must be a finite number, got '0.1'"),
    (dict(dtype=np.float32), "dtype must be a string"),
    (dict(problem={"sigma": True}), "sigma must be a finite number, got True"),
    (dict(problem="lq"), "problem must be an LQProblem"),
])
def test_config_refuses_wrong_types_naming_the_field(kwargs, match):
    with pytest.raises(ValueError, match=match):
        mfcg.preset("quick", "b", **kwargs)


def test_config_still_takes_integers_for_numbers():
    assert mfcg.preset("quick", "b", lr_actor=1, seed=np.int64(2)).lr_actor == 1.0


# --- 7. not a checkpoint ---------------------------------------------------------------------------

@pytest.mark.parametrize("content", [b"", b"hello", b"PK\x03\x04broken"])
def test_load_checkpoint_of_something_else(tmp_path, content):
    path = tmp_path / "x.npz"
    path.write_bytes(content)
    with pytest.raises(ValueError, match=r"x.npz is not a checkpoint of this project \("):
        mfcg.load_checkpoint(str(path))


def test_load_checkpoint_of_another_npz(tmp_path):
    np.savez(tmp_path / "y.npz", a=np.zeros(3))
    with pytest.raises(ValueError, match=r"y.npz is not a checkpoint of this project \(KeyError"):
        mfcg.load_checkpoint(str(tmp_path / "y.npz"))
    np.savez(tmp_path / "z.npz", meta=np.array(json.dumps({"format": 2})))
    with pytest.raises(ValueError, match=r"z.npz is not a checkpoint of this project \(KeyError: 'config'"):
        mfcg.load_checkpoint(str(tmp_path / "z.npz"))


def test_load_checkpoint_with_settings_this_version_refuses(tmp_path):
    """A DRL checkpoint from a version that let DRL keep an unread target network names
    the refused setting, not a broken file."""
    cfg = mfcg.preset("quick", "drl", batch=4, n_samples=8, steps=2)
    path = tmp_path / "c.npz"
    rundir.save_checkpoint(str(path), mfcg.init_state(cfg), cfg)
    with np.load(path) as z:
        data = {k: z[k] for k in z.files}
    meta = json.loads(str(data["meta"]))
    meta["config"]["target_every"] = 200
    data["meta"] = np.array(json.dumps(meta))
    np.savez(path, **data)
    with pytest.raises(ValueError, match=r"c.npz holds settings this version of mfcg refuses: "
                                         r"target_every must be 0 for drl"):
        mfcg.load_checkpoint(str(path))


# --- 8. the smaller ones ---------------------------------------------------------------------------

def test_report_counts_each_run_once_however_spelled(tmp_path, finished):
    _copy_run(finished / "b0", tmp_path / "b0")
    code, _, err = cli("report", "b0", "b0", "b0/", "./b0", "--out", "res", cwd=tmp_path)
    assert code == 0, err
    (entry,) = json.loads((tmp_path / "res" / "summary.json").read_text())["algorithms"].values()
    assert entry["n_runs"] == 1


def test_resume_of_a_finished_run_changes_nothing(tmp_path, finished):
    run = _copy_run(finished / "b0", tmp_path / "b0")
    before = {f: (run / f).read_bytes() for f in os.listdir(run)}
    mtimes = {f: os.stat(run / f).st_mtime_ns for f in before}
    code, _, err = cli("run", "--algo", "b", "--steps", 10, "--out", "b0", *TINY, "--resume", cwd=tmp_path)
    assert code == 0 and "is finished; nothing to resume" in err
    for f in before:
        assert (run / f).read_bytes() == before[f] and os.stat(run / f).st_mtime_ns == mtimes[f], f


def test_report_out_replaces_an_old_report_whole(tmp_path, finished):
    _copy_run(finished / "b0", tmp_path / "b0")
    code, _, err = cli("run", "--algo", "m", "--steps", 10, "--out", "m0", *TINY, "--set", "minibatch=8", cwd=tmp_path)
    assert code == 0, err
    (tmp_path / "res").mkdir()
    (tmp_path / "res" / "notes.txt").write_text("mine")
    assert cli("report", "b0", "m0", "--out", "res", cwd=tmp_path)[0] == 0
    labels = lambda: json.loads((tmp_path / "res" / "summary.json").read_text())["algorithms"]  # noqa: E731
    assert any(label.startswith("m ") for label in labels())
    before = {f: (tmp_path / "res" / f).read_bytes() for f in os.listdir(tmp_path / "res") if f.endswith((".md", ".json"))}
    code, _, err = cli("report", "b0", "--out", "res", cwd=tmp_path)  # m0's copy may be its only record
    assert code == 2 and ("res holds an earlier report's copy of a run this one leaves out "
                          "(res/runs.zip/quick/m0.npz)") in one_line(err)
    assert {f: (tmp_path / "res" / f).read_bytes() for f in before} == before
    kept = _kept(tmp_path / "res")   # the user lets it go (zip -d res/runs.zip quick/m0.npz)
    (tmp_path / "res" / "runs.zip").write_bytes(rundir.pack_archive({"quick/b0.npz": kept["quick/b0.npz"]}))
    (tmp_path / "res" / "stale.png").write_text("an old report's figure")
    summary = json.loads((tmp_path / "res" / "summary.json").read_text())
    summary["files"].append("stale.png")
    (tmp_path / "res" / "summary.json").write_text(json.dumps(summary))
    assert cli("report", "b0", "--out", "res", cwd=tmp_path)[0] == 0
    left = set(os.listdir(tmp_path / "res"))
    assert "stale.png" not in left                              # the old report's figure is gone
    assert {"RESULTS.md", "summary.json", "notes.txt", "laws.png"} <= left  # the new report, and the user's file
    assert not any(label.startswith("m ") for label in labels())


def test_report_keeps_the_runs_files_and_reports_them_again(tmp_path, finished):
    """The report keeps each run's one file, byte for byte (the checkpoint left out), in one
    archive, runs.zip/PRESET/NAME.npz; a report of those copies, named one by one or by the
    report's folder, into the same folder is the same report; a name the archive lacks is
    one line."""
    for seed in (0, 1):
        _copy_run(finished / f"b{seed}", tmp_path / f"b{seed}")
    assert cli("report", "b0", "b1", "--out", "res", cwd=tmp_path)[0] == 0
    assert _kept(tmp_path / "res") == {f"quick/b{seed}.npz": (tmp_path / f"b{seed}" / rx.RUN_FILE).read_bytes()
                                       for seed in (0, 1)}
    files = {f: (tmp_path / "res" / f).read_bytes() for f in ("RESULTS.md", "runs.zip")}
    for args in (("res/runs.zip/quick/b0.npz", "res/runs.zip/quick/b1.npz"), ("res",)):
        code, _, err = cli("report", *args, "--out", "res", cwd=tmp_path)
        assert code == 0, err
        assert {f: (tmp_path / "res" / f).read_bytes() for f in files} == files
    code, _, err = cli("report", "res/runs.zip/quick/b7.npz", "--out", "other", cwd=tmp_path)
    assert code == 2 and "res/runs.zip/quick/b7.npz is not a finished run (res/runs.zip holds no quick/b7.npz)" in one_line(err)


def test_a_report_folder_adds_runs_to_those_it_keeps(tmp_path, finished):
    """`report res b1 --out res`: the runs res keeps and b1, in that order."""
    for seed in (0, 1):
        _copy_run(finished / f"b{seed}", tmp_path / f"b{seed}")
    assert cli("report", "b0", "--out", "res", cwd=tmp_path)[0] == 0
    for _ in range(2):   # again: res's copy of b1 gives way to b1 itself
        code, _, err = cli("report", "res", "b1", "--out", "res", cwd=tmp_path)
        assert code == 0, err
        assert list(_kept(tmp_path / "res")) == ["quick/b0.npz", "quick/b1.npz"]
    (entry,) = json.loads((tmp_path / "res" / "summary.json").read_text())["algorithms"].values()
    assert entry["n_runs"] == 2
    _copy_run(finished / "b0", tmp_path / "two" / "b1")          # another run, the same name
    code, _, err = cli("report", "res", "two/b1", "--out", "res", cwd=tmp_path)
    assert code == 2 and "two runs would be kept as runs.zip/quick/b1.npz" in one_line(err)


def test_report_interrupted_while_drawing_keeps_the_runs_copies(tmp_path, finished, monkeypatch):
    """The copies, once the only record of their runs, are reported back into their own
    folder and the figures fail: the copies are still whole, and a new report works."""
    for seed in (0, 1):
        _copy_run(finished / f"b{seed}", tmp_path / f"b{seed}")
    monkeypatch.chdir(tmp_path)
    assert rx.main(["report", "b0", "b1", "--out", "res"]) == 0
    original = (tmp_path / "b1" / rx.RUN_FILE).read_bytes()
    import shutil
    for seed in (0, 1):
        shutil.rmtree(tmp_path / f"b{seed}")

    def fail(*args, **kwargs):
        raise KeyboardInterrupt("interrupted while drawing")
    copies = ["res/runs.zip/quick/b0.npz", "res/runs.zip/quick/b1.npz"]
    monkeypatch.setattr(rx, "make_figures", fail)
    assert rx.main(["report", *copies, "--out", "res"]) == 130  # main's one line for Ctrl-C
    assert _kept(tmp_path / "res")["quick/b1.npz"] == original
    monkeypatch.undo()
    monkeypatch.chdir(tmp_path)
    assert rx.main(["report", *copies, "--out", "res"]) == 0


def test_report_never_follows_a_link_into_a_run(tmp_path, finished):
    """An old report's archive replaced by a link to the run itself: refused, the run untouched."""
    run = _copy_run(finished / "b0", tmp_path / "b0")
    assert cli("report", "b0", "--out", "res", cwd=tmp_path)[0] == 0
    (tmp_path / "res" / "runs.zip").unlink()
    os.symlink(run / rx.RUN_FILE, tmp_path / "res" / "runs.zip")
    before = {f: (run / f).read_bytes() for f in os.listdir(run)}
    code, _, err = cli("report", "b0", "--out", "res", cwd=tmp_path)
    assert code == 2 and "is reached through a symbolic link" in one_line(err)
    assert {f: (run / f).read_bytes() for f in os.listdir(run)} == before


def test_a_run_naming_no_preset_is_one_line(tmp_path, finished):
    """A run whose preset is not a name (it becomes a folder of the report's copies)."""
    run = _copy_run(finished / "b0", tmp_path / "b0")
    saved, metrics, history, curves = rundir.unpack_run(str(run / rx.RUN_FILE))
    for preset in ("../../elsewhere", 1):
        (run / rx.RUN_FILE).write_bytes(rundir.pack_run({**saved, "preset": preset}, metrics, history, curves))
        code, _, err = cli("report", "b0", "--out", "res", cwd=tmp_path)
        assert code == 2 and "b0/run.npz names no preset of this version" in one_line(err)
    assert not (tmp_path / "res").exists() and not (tmp_path / "elsewhere").exists()


def test_report_never_writes_into_a_run(tmp_path, finished):
    """--out . beside the runs: the report's files only (its archive beside runs/), the run
    untouched, also when reported again."""
    run = _copy_run(finished / "b0", tmp_path / "runs" / "quick" / "b0")
    before = {f: (run / f).read_bytes() for f in os.listdir(run)}
    for _ in range(2):
        code, _, err = cli("report", "runs/quick/b0", "--out", ".", cwd=tmp_path)
        assert code == 0, err
        assert {f: (run / f).read_bytes() for f in os.listdir(run)} == before
    assert list(_kept(tmp_path)) == ["quick/b0.npz"]


def test_a_second_ctrl_c_stops_at_once(tmp_path):
    """A step that takes seconds: the first Ctrl-C asks for the step to finish, the second
    stops at once, with one line and no checkpoint written."""
    if mfcg.get_xp() is not np:
        pytest.skip("NumPy only: the step below takes seconds on a CPU, milliseconds on a GPU")
    # one Langevin refresh of 10,000 iterations over 1,000 samples and 512 hidden units: seconds
    proc = start("run", "--algo", "b", "--out", "r", "--set", "langevin_steps=10000", "--set", "hidden_score=512",
                 cwd=tmp_path)
    wait_for(lambda: holder(tmp_path / "r") == proc.pid)
    time.sleep(1.0)  # well inside the first step's Langevin refresh
    proc.send_signal(signal.SIGINT)
    time.sleep(0.3)
    t0 = time.time()
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert time.time() - t0 < 10 and proc.returncode == 130
    assert "stopping after step 1, then checkpointing (Ctrl-C again to stop at once)" in err
    assert "interrupted again during step 1: stopped at once, no checkpoint written" in err.splitlines()[-1]
    assert "Traceback" not in err and not (tmp_path / "r" / "checkpoint.npz").exists()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_stopping_reproduce_stops_its_runs_after_a_checkpoint(tmp_path, sig):
    args = ["reproduce", "--algos", "b", "--variants", "plain", "--seeds", 1, "--steps", 100000,
            "--set", "eval_every=20", "--set", "checkpoint_every=20", "--runs", "runs", "--out", "res"]
    proc = start(*args, cwd=tmp_path)
    run_dir = tmp_path / "runs" / "quick" / "b_eval_every-20_checkpoint_every-20-s0"
    wait_for(lambda: holder(run_dir) is not None and (run_dir / "checkpoint.npz").exists())
    child = holder(run_dir)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130
    last = err.strip().splitlines()[-1]
    assert "1 running run(s) checkpointed and stopped; the same command continues them" in last, err
    with pytest.raises(ProcessLookupError):
        os.kill(child, 0)
    log = (run_dir.parent / (run_dir.name + ".log")).read_text()
    assert "checkpoint written to" in log


# --- 9. a finished run as one file ---------------------------------------------------------------

def test_a_run_file_gives_back_what_was_packed():
    """Integers, float32 values, float64 values, NaN, a field missing from some evaluations,
    an evenly spaced grid and other arrays: unpack_run(pack_run(...)) is equal, of the same
    types, with the records' keys in their order; the same run packs to the same bytes."""
    import io
    saved = {"preset": "quick", "settings": {"langevin_steps": 5}, "config": {"algo": "b", "seed": 3}}
    metrics = {"label": "b langevin_steps=5", "seed": 3, "mean_error": 0.1, "settings": {"langevin_steps": 5}}
    history = [{"step": 250, "mean_error": float(np.float32(0.3)), "loss_actor": 0.1, "wall_seconds": 1.5},
               {"step": 500, "mean_error": float(np.float32(0.2)), "wall_seconds": float("nan")},
               {"step": 750, "mean_error": 0.1, "loss_actor": -2.0, "wall_seconds": 3.25}]
    curves = {"grid": np.linspace(-1.7, 2.2, 201), "density": np.exp(-np.linspace(0, 3, 50) ** 2) + 1e-9,
              "samples": np.random.default_rng(0).standard_normal(100).astype(np.float32).astype(np.float64),
              "uneven": np.array([0.0, 0.1, 0.3])}
    packed = rundir.pack_run(saved, metrics, history, curves)
    assert packed == rundir.pack_run(saved, metrics, history, curves)
    s, m, h, c = rundir.unpack_run(io.BytesIO(packed))
    assert s == saved and m == metrics
    assert [list(r) for r in h] == [list(r) for r in history]
    for mine, theirs in zip(h, history):
        for k, v in theirs.items():
            assert type(mine[k]) is type(v) and (mine[k] == v or (np.isnan(v) and np.isnan(mine[k]))), (k, v)
    assert set(c) == set(curves)
    for k, a in curves.items():
        assert c[k].dtype == np.float64 and np.array_equal(c[k], a), k
    with np.load(io.BytesIO(packed)) as z:  # stored compactly: the grid as its ends, float32 where exact
        assert "linspace/grid.npy" not in z.files and "linspace/grid" in z.files
        assert z["curves/samples"].dtype == np.float32 and z["curves/density"].dtype == np.float64
        assert z["history"]["mean_error"].dtype == np.float64 and z["history"]["step"].dtype == np.int64


def test_a_run_file_refuses_what_it_cannot_hold_exactly():
    with pytest.raises(ValueError, match="history field 'note' holds a value that is not a number"):
        rundir.pack_run({"preset": "quick", "settings": {}, "config": {}}, {}, [{"step": 1, "note": "x"}], {})


# --- 10. a report never loses or overwrites what it did not write (a review's cases) --------------

def test_a_report_stopped_before_its_summary_is_made_again(tmp_path, finished):
    """Killed after writing the copies but before summary.json: the same command again
    finds its own copies (the same bytes) and finishes the report."""
    for seed in (0, 1):
        _copy_run(finished / f"b{seed}", tmp_path / f"b{seed}")
    assert cli("report", "b0", "b1", "--out", "res", cwd=tmp_path)[0] == 0
    table = (tmp_path / "res" / "RESULTS.md").read_text()
    (tmp_path / "res" / "summary.json").unlink()
    (tmp_path / "res" / "RESULTS.md").unlink()
    code, _, err = cli("report", "b0", "b1", "--out", "res", cwd=tmp_path)
    assert code == 0, err
    assert (tmp_path / "res" / "RESULTS.md").read_text() == table


def test_a_copy_of_another_run_under_the_same_name_is_refused(tmp_path, finished):
    """Two run roots with a run of the same name (b0): the second report into the first's
    folder would replace the first run's copy, maybe its only record: refused, untouched."""
    _copy_run(finished / "b0", tmp_path / "one" / "b0")
    _copy_run(finished / "b1", tmp_path / "two" / "b0")          # another run, the same name
    assert cli("report", "one/b0", "--out", "res", cwd=tmp_path)[0] == 0
    before = (tmp_path / "res/runs.zip").read_bytes()
    code, _, err = cli("report", "two/b0", "--out", "res", cwd=tmp_path)
    assert code == 2 and "res/runs.zip/quick/b0.npz holds a run made with other settings" in one_line(err)
    assert (tmp_path / "res/runs.zip").read_bytes() == before


def test_the_same_run_made_again_replaces_its_copy(tmp_path):
    """`make reproduce` on a fresh clone: the quick report's runs are made again, with the
    same settings, and their new copies replace the committed ones (their times differ)."""
    args = ("run", "--algo", "b", "--steps", 10, "--out", "b0", *TINY)
    assert cli(*args, cwd=tmp_path)[0] == 0
    assert cli("report", "b0", "--out", "res", cwd=tmp_path)[0] == 0
    first = _kept(tmp_path / "res")["quick/b0.npz"]
    import shutil
    shutil.rmtree(tmp_path / "b0")
    assert cli(*args, cwd=tmp_path)[0] == 0                   # the same run, made again
    code, _, err = cli("report", "b0", "--out", "res", cwd=tmp_path)
    assert code == 0, err
    again = _kept(tmp_path / "res")["quick/b0.npz"]
    assert again != first and again == (tmp_path / "b0" / "run.npz").read_bytes()


def test_a_report_never_overwrites_or_removes_files_it_did_not_write(tmp_path, finished):
    _copy_run(finished / "b0", tmp_path / "b0")
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "RESULTS.md").write_text("my notes")
    code, _, err = cli("report", "b0", "--out", "mine", cwd=tmp_path)
    assert code == 2 and "mine/RESULTS.md was not written by a report" in one_line(err)
    assert (tmp_path / "mine" / "RESULTS.md").read_text() == "my notes"
    (tmp_path / "other").mkdir()   # another tool's summary.json, listing its own data
    (tmp_path / "other" / "summary.json").write_text(json.dumps({"files": ["data.csv"]}))
    (tmp_path / "other" / "data.csv").write_text("1,2")
    assert cli("report", "b0", "--out", "other", cwd=tmp_path)[0] == 0
    assert (tmp_path / "other" / "data.csv").read_text() == "1,2"


def test_a_report_replaces_an_old_report_that_listed_no_files(tmp_path, finished):
    """A report from before summary.json listed its files (it has "algorithms" but no
    "files") is replaced whole, its RESULTS.md and its figures; the user's files stay."""
    _copy_run(finished / "b0", tmp_path / "b0")
    old = tmp_path / "old"
    old.mkdir()
    (old / "summary.json").write_text(json.dumps({"presets": {}, "runs": {}, "algorithms": {}}))
    (old / "RESULTS.md").write_text("an old report")
    (old / "learning_curves_steps.png").write_text("an old report's figure")
    (old / "notes.txt").write_text("mine")
    code, _, err = cli("report", "b0", "--out", "old", cwd=tmp_path)
    assert code == 0, err
    assert (old / "RESULTS.md").read_text() != "an old report"
    assert not (old / "learning_curves_steps.png").exists()      # named otherwise: all figures drawn anew
    assert {"learning_curves.png", "laws.png", "notes.txt"} <= set(os.listdir(old))
    assert (old / "notes.txt").read_text() == "mine"


def test_reproduce_refuses_an_out_it_could_not_report_into_before_any_run(tmp_path):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "RESULTS.md").write_text("my notes")
    code, _, err = cli("reproduce", "--algos", "b", "--variants", "plain", "--seeds", 1, "--steps", 10,
                       "--runs", "runs", "--out", "mine", *TINY, cwd=tmp_path)
    assert code == 2 and "mine/RESULTS.md was not written by a report" in one_line(err)
    assert not (tmp_path / "runs").exists()                       # no run was started
    assert (tmp_path / "mine" / "RESULTS.md").read_text() == "my notes"


def test_a_write_never_follows_a_link_planted_at_its_temporary_file(tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    os.symlink(victim, tmp_path / "out.txt.tmp")
    rundir.write_text(str(tmp_path / "out.txt"), "new")
    assert victim.read_text() == "keep me" and (tmp_path / "out.txt").read_text() == "new"


def test_a_run_given_by_its_file_is_the_run_of_its_directory(tmp_path, finished):
    _copy_run(finished / "b0", tmp_path / "b0")
    code, _, err = cli("report", "b0", "b0/run.npz", "--out", "res", cwd=tmp_path)
    assert code == 0, err
    assert list(_kept(tmp_path / "res")) == ["quick/b0.npz"]
    (entry,) = json.loads((tmp_path / "res" / "summary.json").read_text())["algorithms"].values()
    assert entry["n_runs"] == 1


@pytest.mark.parametrize("history, match", [
    ([], "at least one evaluation"),
    ([{"step": 1, "a": 0.5}, {"step": 2, "a": 1}], "holds integers and floats"),
    ([{"step": 1, "a": 0.5, "b": 0.1}, {"step": 2, "b": 0.2, "a": 0.4}], "keys in different orders")])
def test_a_run_file_refuses_a_history_it_would_not_give_back_as_it_was(history, match):
    with pytest.raises(ValueError, match=match):
        rundir.pack_run({"preset": "quick", "settings": {}, "config": {}}, {}, history, {})


def test_a_committed_report_is_made_again_from_its_committed_runs(tmp_path):
    """`report --again` on a copy of a committed report (claims/drl-lean, four runs): the
    same table and summary, byte for byte, and the same files, from the runs it keeps (the
    figures' pixels are left to the eye: a font may render otherwise elsewhere)."""
    import shutil
    src = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "docs", "results", "claims", "drl-lean")
    shutil.copytree(src, tmp_path / "drl-lean")
    before = {f: (tmp_path / "drl-lean" / f).read_bytes() for f in ("RESULTS.md", "runs.zip")}
    summary = json.loads((tmp_path / "drl-lean" / "summary.json").read_text())
    code, _, err = cli("report", "--again", "drl-lean", cwd=tmp_path)
    assert code == 0, err
    assert {f: (tmp_path / "drl-lean" / f).read_bytes() for f in before} == before
    again = json.loads((tmp_path / "drl-lean" / "summary.json").read_text())
    assert again["algorithms"] == summary["algorithms"] and again["files"] == summary["files"]


# --- 11. a report's archive of runs, as a review tried to break it -------------------------------

def _report_main(monkeypatch, capsys, where, *args):
    """report ARGS in this process, in `where`: (exit code, its one line on stderr)."""
    monkeypatch.chdir(where)
    capsys.readouterr()
    code = rx.main(["report", "--figures", "none", *map(str, args)])
    return code, one_line(capsys.readouterr().err)


def _archive_of(members):
    """A zip of (name, bytes) pairs as they are, duplicates and all."""
    import io
    import warnings
    import zipfile
    buf = io.BytesIO()
    with warnings.catch_warnings(), zipfile.ZipFile(buf, "w") as zf:
        warnings.simplefilter("ignore")   # zipfile warns of a duplicate name
        for name, content in members:
            zf.writestr(name, content)
    return buf.getvalue()


@pytest.mark.parametrize("how", ["cut short", "a member named otherwise", "two members of one name", "a directory"])
def test_a_damaged_archive_is_one_line_and_stays_as_it_was(tmp_path, finished, monkeypatch, capsys, how):
    """An archive cut short (it opens as the last run file inside it), with a member not
    named PRESET/NAME.npz, with a name twice, or a directory: refused in one line, as --out
    and as a run to read, and nothing changes."""
    for seed in (0, 1):
        _copy_run(finished / f"b{seed}", tmp_path / f"b{seed}")
    assert _report_main(monkeypatch, capsys, tmp_path, "b0", "b1", "--out", "res")[0] == 0
    archive = tmp_path / "res" / "runs.zip"
    kept = _kept(tmp_path / "res")
    if how == "cut short":
        archive.write_bytes(archive.read_bytes()[:-len(kept["quick/b1.npz"]) // 2])
    elif how == "a member named otherwise":
        archive.write_bytes(_archive_of([("quick/b0.npz", kept["quick/b0.npz"]), ("b1.npz", kept["quick/b1.npz"])]))
    elif how == "two members of one name":
        archive.write_bytes(_archive_of([("quick/b0.npz", kept["quick/b1.npz"]), *kept.items()]))
    else:
        archive.unlink()
        archive.mkdir()
    before = {f: (tmp_path / "res" / f).read_bytes() for f in ("RESULTS.md", "summary.json")}
    code, err = _report_main(monkeypatch, capsys, tmp_path, "b0", "b1", "--out", "res")
    assert code == 2 and err.startswith("run_experiments.py: error: res/runs.zip is ")
    assert ("is not a file" if how == "a directory" else "not a report's archive of runs") in err
    code, err = _report_main(monkeypatch, capsys, tmp_path, "res/runs.zip/quick/b0.npz", "--out", "other")
    assert code == 2 and ("is not a finished run" if how == "a directory" else "res/runs.zip is unreadable") in err
    assert {f: (tmp_path / "res" / f).read_bytes() for f in before} == before
    assert not (tmp_path / "other").exists()


def test_the_archive_itself_given_as_a_run_is_one_line(tmp_path, finished, monkeypatch, capsys):
    _copy_run(finished / "b0", tmp_path / "b0")
    assert _report_main(monkeypatch, capsys, tmp_path, "b0", "--out", "res")[0] == 0
    code, err = _report_main(monkeypatch, capsys, tmp_path, "res/runs.zip", "--out", "other")
    assert code == 2 and "res/runs.zip is a report's runs, not one run: give the report's folder" in err


def test_a_member_path_is_read_as_the_system_resolves_it(tmp_path):
    """lnk/../runs.zip is the runs.zip beside lnk's target, not the one beside lnk."""
    (tmp_path / "other" / "deep").mkdir(parents=True)
    (tmp_path / "other" / "runs.zip").write_bytes(rundir.pack_archive({"quick/b0.npz": b"theirs"}))
    (tmp_path / "runs.zip").write_bytes(rundir.pack_archive({"quick/b0.npz": b"mine"}))
    os.symlink(tmp_path / "other" / "deep", tmp_path / "lnk")
    path = str(tmp_path / "lnk" / ".." / "runs.zip" / "quick" / "b0.npz")
    archive, member = rundir.archive_member(path)
    assert member == "quick/b0.npz" and rundir.read_archive(archive)[member] == b"theirs"
    assert rundir.archive_member(str(tmp_path / "runs.zip" / "." / "quick" / "b0.npz"))[1] == "quick/b0.npz"
    assert rundir.archive_member(str(tmp_path / "nothing.zip" / "quick" / "b0.npz")) is None


def test_a_report_stopped_after_its_archive_lets_a_larger_one_through(tmp_path, finished, monkeypatch, capsys):
    """Stopped after writing runs.zip (no summary.json yet), then asked for one more run: the
    archive holds only this report's copies, byte for byte, so it is replaced; an unlisted
    archive with any other copy is not."""
    for seed in (0, 1):
        _copy_run(finished / f"b{seed}", tmp_path / f"b{seed}")
    assert _report_main(monkeypatch, capsys, tmp_path, "b0", "--out", "res")[0] == 0
    for f in ("summary.json", "RESULTS.md"):
        (tmp_path / "res" / f).unlink()
    code, err = _report_main(monkeypatch, capsys, tmp_path, "b0", "b1", "--out", "res")
    assert code == 0, err
    assert list(_kept(tmp_path / "res")) == ["quick/b0.npz", "quick/b1.npz"]
    for f in ("summary.json", "RESULTS.md"):
        (tmp_path / "res" / f).unlink()
    _copy_run(finished / "b0", tmp_path / "two" / "b1")          # another run under b1's name
    code, err = _report_main(monkeypatch, capsys, tmp_path, "b0", "two/b1", "--out", "res")
    assert code == 2 and "res/runs.zip was not written by a report" in err


def test_an_older_reports_run_directory_is_never_emptied(tmp_path, finished):
    """An old report made with --out . listed a run directory's own four files as its copy:
    converting it would remove the run's files. Refused, the run untouched."""
    run = _old_layout(finished / "b0", tmp_path / "runs" / "quick" / "b0")
    (run / "checkpoint.npz").write_bytes(b"the run's own")
    (tmp_path / "summary.json").write_text(json.dumps({"algorithms": {}, "files": [
        f"runs/quick/b0/{f}" for f in rundir.OLD_RUN_FILES]}))
    before = {f: (run / f).read_bytes() for f in os.listdir(run)}
    code, _, err = cli("report", "runs/quick/b0", "--out", ".", cwd=tmp_path)
    assert code == 2 and "runs/quick/b0 holds files no report wrote (checkpoint.npz)" in one_line(err)
    assert {f: (run / f).read_bytes() for f in os.listdir(run)} == before
    assert not (tmp_path / "runs.zip").exists()


def test_an_older_copy_of_another_run_than_the_archives_is_kept(tmp_path, finished, monkeypatch, capsys):
    """A summary listing both the archive and an older copy under the same name (as a report
    stopped while removing the older ones leaves it), the older one of another run: refused,
    as that copy may be its run's only record."""
    _copy_run(finished / "b0", tmp_path / "b0")
    assert _report_main(monkeypatch, capsys, tmp_path, "b0", "--out", "res")[0] == 0
    older = tmp_path / "res" / "runs" / "quick" / "b0.npz"
    older.parent.mkdir(parents=True)
    older.write_bytes((finished / "b1" / rx.RUN_FILE).read_bytes())
    summary = json.loads((tmp_path / "res" / "summary.json").read_text())
    summary["files"].append("runs/quick/b0.npz")
    (tmp_path / "res" / "summary.json").write_text(json.dumps(summary))
    code, err = _report_main(monkeypatch, capsys, tmp_path, "b0", "--out", "res")
    assert code == 2 and "res/runs/quick/b0.npz holds another run than res/runs.zip/quick/b0.npz" in err
    assert older.read_bytes() == (finished / "b1" / rx.RUN_FILE).read_bytes()
