"""run_experiments: the command line of mfcg.

    python run_experiments.py run --algo b [--preset quick] [--seed 0] [--mf] [--steps N]
                                  [--set KEY=VALUE] [--out DIR] [--resume]
    python run_experiments.py report RUN [RUN ...] [--out results]
    python run_experiments.py report --again REPORT [REPORT ...]
    python run_experiments.py reproduce [--preset quick] [--seeds 5 | 20-23 | 0,5,9] [--jobs J]
                                        [--algos b,m] [--set KEY=V1,V2,...] [--dry-run]
    python run_experiments.py bench [--algo A] [--steps N] [--preset paper] [--out ROOT] [--replace]
    python run_experiments.py memory [--preset lean] [--seed 0] [--out DIR]

`run` trains one algorithm into its own directory (config.json, checkpoint.npz, and when it
finishes run.npz: config, metrics, history and curves in one file); `report` turns any
number of finished runs into a table, four figures and a compact copy of each run, and
`report --again` remakes a report from the copies it keeps; `reproduce` runs every
algorithm × seed as independent processes (or prints their commands), then reports;
`bench` measures steps/s and where a step's time goes; `memory` measures how much of the
group's terms AC's own score networks pass to its agent. `--set` changes one Config field
of the preset (`reproduce` sweeps a list of values); the field and its value become part
of the run's label, so `report` keeps such runs apart. Runs never overwrite each other: an
existing directory is only continued, with --resume. `--help` on each command lists its
options and their defaults.
"""
import os
import signal
import sys


def _interrupted_while_loading(signum, frame):
    print("run_experiments.py: interrupted", file=sys.stderr, flush=True)
    os._exit(130)


if __name__ == "__main__":  # Ctrl-C while the modules load: one line, not a traceback
    signal.signal(signal.SIGINT, _interrupted_while_loading)

import argparse  # noqa: E402
import dataclasses  # noqa: E402
import io  # noqa: E402
import itertools  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import re  # noqa: E402
import shlex  # noqa: E402
import time  # noqa: E402

# mfcg runs its independent pieces (the two Langevin pools, the two score networks, critic
# and actor) on two threads itself; OpenBLAS's own worker threads would compete with those
# for the cores (docs/performance.md, "Why the CPU code is arranged as it is"). Set before NumPy loads OpenBLAS;
# an explicit setting in the environment wins.
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402

import mfcg  # noqa: E402
import nets  # noqa: E402
from autograd_lite import backend_name, get_xp, to_numpy  # noqa: E402
from fastpaths import PhaseTimer, device_name, machine, sync  # noqa: E402
from rundir import (RUN_FILE, Progress, UsageError, claim, keep_freed_memory, one_line,  # noqa: E402
                    pack_run, run_copies, run_dir_status, run_processes, settings_diff, value_from_text,
                    write_atomically, write_json, write_report_dir, write_text)
import rundir  # noqa: E402


# The metrics the table and summary report, in order.
TABLE_METRICS = ("mean_error", "mean_error_mfg", "local_mean", "local_std", "global_mean",
                 "global_std", "local_mean_density", "local_std_density", "control_rmse",
                 "control_rmse_mfg", "control_slope", "control_intercept", "value_rmse",
                 "value_rmse_paper", "agents_mean", "agents_std")
# d > 1: what the table gives instead of norms and a slope, each coordinate on its own
# (mfcg.coordinate_metrics)
COORDINATE_METRICS = ("mean_error_worst", "mean_error_rms", "mean_error_mfg_worst", "control_rmse_worst",
                      "control_rmse_at_mfg_worst", "jacobian_diag_error", "jacobian_offdiag")


def run_label(algo, mf, settings=None, dim=1, rotated=False):
    """A run's name in tables and figures: the algorithm, '+mf' with the correction, ' d=D'
    in D > 1 dimensions, ' rotated' on the coupled benchmark, then any field changed with
    --set, as ' key=value'."""
    label = (f"{algo}+mf" if mf else algo) + (f" d={dim}" if dim != 1 else "") + (" rotated" if rotated else "")
    return label + "".join(f" {k}={v}" for k, v in (settings or {}).items())


def file_name(label):
    """A label as a file or directory name: 'm+mf langevin_steps=5' → 'm+mf_langevin_steps-5'."""
    return re.sub(r"[^\w+.-]", "_", label.replace("=", "-"))


# Config fields --set leaves alone: they have their own options, or are not one value.
NOT_SETTABLE = ("algo", "seed", "mf_correction", "steps", "problem")


def parse_setting(text, sweep=False):
    """'KEY=VALUE' → (key, [value]), the value of the Config field's type, read by the
    rules Config checks its values by; with sweep, 'KEY=V1,V2,...' → (key, [V1, V2, ...])."""
    key, sep, raw = text.partition("=")
    fields = mfcg.Config.__dataclass_fields__
    if not sep or not key or not raw:
        raise UsageError(f"--set {text}: expected KEY=VALUE")
    if key not in fields:
        raise UsageError(f"--set {text}: Config has no field {key!r}")
    if key in NOT_SETTABLE:
        raise UsageError(f"--set {text}: the problem's settings are not changed from the command line"
                         if key == "problem" else f"--set {text}: {key} has its own option, not --set")
    values = []
    for item in raw.split(",") if sweep else [raw]:
        try:  # read as Config checks it (rundir.FIELD_TYPES)
            values.append(value_from_text(type(fields[key].default), item))
        except ValueError as exc:
            raise UsageError(f"--set {text}: {key} {exc}") from None
    if len(set(values)) != len(values):
        raise UsageError(f"--set {text}: a value is repeated")
    return key, values


def parse_settings(texts, sweep=False):
    """Every --set of a command line → {key: [values]}, in Config's field order (so the
    label does not depend on the order they were typed in); a field set twice is an error."""
    settings = {}
    for text in texts or []:
        key, values = parse_setting(text, sweep)
        if key in settings:
            raise UsageError(f"--set {text}: {key} is set twice")
        settings[key] = values
    return {k: settings[k] for k in mfcg.Config.__dataclass_fields__ if k in settings}


# Time to accuracy: when a run's evaluations fall below these for good. A zero control has
# control error 0.385 against α̂ over the limiting law.
ACCURACY_THRESHOLDS = {"control_rmse": 0.3, "mean_error": 0.1}


def held_from(history, ok):
    """The first evaluation from which ok(evaluation) holds to the end of the run; None if
    it does not hold at the last. Not the first crossing, which would count transients: a
    population passing m* on its way elsewhere."""
    start = None
    for h in history:
        start = (h if start is None else start) if ok(h) else None
    return start


def time_to_accuracy(history, key, threshold):
    """(wall-clock seconds, step) from which history[key] stays below threshold (held_from)."""
    h = held_from(history, lambda h: h[key] < threshold)
    return None if h is None else (h["wall_seconds"], h["step"])


LATE_PART = 0.25  # the late window: the evaluations in the last quarter of a run


def late_part(history, steps, part=LATE_PART):
    """The evaluations after step (1 − part)·steps: a run's late window (with none there,
    its last evaluation)."""
    return [h for h in history if h["step"] > (1 - part) * steps] or history[-1:]


def _number(v):
    """A closed-form quantity for a report's text: a number, or (d > 1) its coordinates."""
    v = np.atleast_1d(v)
    if len(v) == 1 or np.all(v == v[0]):
        return f"{v[0]:.4f}"
    return "(" + ", ".join(f"{x:.3f}" for x in v[:4]) + (", …)" if len(v) > 4 else ")")


def late_window(history, steps, m_star, m_mfg, part=LATE_PART):
    """Where a run's local mean spends the last `part` of its steps: the median and the
    quartiles over the evaluations after step (1 − part)·steps, and the share of them
    within the distance threshold of m* and of m_mfg. A run that wanders is judged badly by
    its last evaluation alone. With no evaluation in the window, the last one. Also the
    mean and the standard deviation of the agents' own mean over the window (`agents_mean`,
    `agents_sd`; None where the history does not record it): where the population itself
    rests and how much it wanders, without the sampler's noise.

    In d > 1 dimensions a mean is a vector: the median and quartiles are then those of the
    worst coordinate's distance to m*, the shares those of the worst coordinate's distance
    to each equilibrium (mfcg.coordinate_metrics), and the agents' mean None."""
    window = late_part(history, steps, part)
    near = ACCURACY_THRESHOLDS["mean_error"]
    if "mean_error_worst" in window[0]:
        late = np.array([h["mean_error_worst"] for h in window], dtype=float)
        shares = [np.mean([h[k] < near for h in window]) for k in ("mean_error_worst", "mean_error_mfg_worst")]
        agents = [None]
    else:
        late = np.array([h["local_mean"] for h in window], dtype=float)
        shares = [np.mean(abs(late - m_star) < near), np.mean(abs(late - m_mfg) < near)]
        agents = [h.get("agents_mean") for h in window]
    q1, median, q3 = np.percentile(late, [25, 50, 75])
    return {"median": float(median), "q1": float(q1), "q3": float(q3), "evaluations": len(late),
            "near_m_star": float(shares[0]), "near_m_mfg": float(shares[1]),
            "agents_mean": None if None in agents else float(np.mean(agents)),
            "agents_sd": None if None in agents else float(np.std(agents))}


# A run has settled at an equilibrium when, at every evaluation of its late window, its
# local mean is within SETTLED["distance"] of that equilibrium's mean and its control
# within SETTLED["control"] (RMSE) of that equilibrium's control: m* and α̂ for the
# cooperative MFCG solution, m_mfg and −2Γ2(x − m_mfg) for the Nash one.
SETTLED = {"distance": 0.05, "control": 0.1}
# Each control error is measured over its own equilibrium's limiting law (mfcg.evaluate).
EQUILIBRIA = {"m*": ("mean_error", "control_rmse"), "m_mfg": ("mean_error_mfg", "control_rmse_at_mfg")}
EQUILIBRIUM_MEAN = {"m*": "mean", "m_mfg": "mean_mfg"}  # the LQSolution attribute of each


def aimed_at(mf):
    """The equilibrium a variant aims at: m* with the mean-field correction, m_mfg without."""
    return "m*" if mf else "m_mfg"


def counted(n, noun):
    """'1 run', '2 runs', '0 figures'."""
    return f"{n} {noun}{'' if n == 1 else 's'}"


def worst_of(key, record):
    """key, or in d > 1 dimensions, where the record has it, its worst coordinate's
    (mfcg.coordinate_metrics: KEY_worst)."""
    return f"{key}_worst" if f"{key}_worst" in record else key


def judged_by(record, at):
    """The distance and the control error that judge equilibrium `at`: EQUILIBRIA's, or in
    d > 1 dimensions their worst coordinate's (worst_of)."""
    return tuple(worst_of(k, record) for k in EQUILIBRIA[at])


def describe_for(mf):
    """What a run's progress and last lines say of an evaluation record: the distance and
    the control error that judge the equilibrium its variant aims at (+mf: m*; plain:
    m_mfg), in d > 1 dimensions the worst coordinate's."""
    at = aimed_at(mf)
    def describe(record):
        distance, control = judged_by(record, at)
        coordinate = "worst coordinate " if distance.endswith("_worst") else ""
        return f"{coordinate}off {at} {record[distance]:.3f}  control error {record[control]:.3f}"
    return describe


def _records(history, at):
    """Whether every evaluation records the control error that judges `at` (runs made
    before the Nash law's was recorded do not)."""
    return all(judged_by(h, at)[1] in h for h in history)


def _within(record, at):
    """Whether one evaluation is within both of SETTLED's thresholds of equilibrium `at`."""
    distance, control = judged_by(record, at)
    return record[distance] < SETTLED["distance"] and record[control] < SETTLED["control"]


def settled(history, steps, at, part=LATE_PART):
    """Whether a run settled at equilibrium `at` ("m*" or "m_mfg"; see SETTLED): every
    evaluation after step (1 − part)·steps within both thresholds (with none there, the
    last evaluation). None for a history that does not record the control error it needs."""
    if not _records(history, at):
        return None
    late = late_part(history, steps, part)
    return all(_within(h, at) for h in late)


def settled_on_average(history, steps, at, mean, part=LATE_PART):
    """Whether a run rests at equilibrium `at` on average: over its late window (as
    settled's), the mean of its local mean within SETTLED["distance"] of the equilibrium's
    `mean`, and the mean of its control error below SETTLED["control"]. Weaker than
    settled (which implies it): for a learner whose estimate swings from one evaluation
    to the next while it is right on average, as a single agent's (AC) does. None where
    the history lacks the control error it needs. In d > 1 dimensions, the mean over the
    window of the worst coordinate's distance (judged_by)."""
    if not _records(history, at):
        return None
    late = late_part(history, steps, part)
    distance, control = judged_by(late[0], at)
    off = (np.mean([h[distance] for h in late]) if distance.endswith("_worst")
           else abs(np.mean([h["local_mean"] for h in late]) - mean))
    return bool(off < SETTLED["distance"] and np.mean([h[control] for h in late]) < SETTLED["control"])


def settled_from(history, at):
    """The step from which a run stays within both of SETTLED's thresholds of `at` (held_from)."""
    if not _records(history, at):
        return None
    h = held_from(history, lambda h: _within(h, at))
    return None if h is None else h["step"]


def default_run_dir(root, preset, algo, seed, mf=False, settings=None, dim=1, rotated=False):
    name = f"{file_name(run_label(algo, mf, settings, dim, rotated))}-s{seed}"
    if len(name) > 200:  # file systems allow 255 bytes, and reproduce adds '.log'
        raise UsageError(f"the run's name would be {len(name)} characters, too long for a directory: "
                         f"--set fewer fields, or pass --out")
    return os.path.join(root, preset, name)


# ---------------------------------------------------------------------------------------
# run
# ---------------------------------------------------------------------------------------

def run_config(preset, algo, seed, mf, steps=None, settings=None, dim=1, rotated=False):
    """The Config that `run` trains for these command-line settings (settings: from --set;
    dim: the isotropic problem in that many dimensions, or with `rotated` the coupled one,
    mfcg.rotated_problem)."""
    overrides = {"seed": seed, "mf_correction": mf, **(settings or {})}
    if steps is not None:
        overrides["steps"] = steps
    if rotated and dim < 2:
        raise UsageError("--rotated needs --dim 2 or more: one rotated coordinate is no coupling")
    if rotated:
        overrides["problem"] = mfcg.rotated_problem(dim)
    elif dim != 1:
        overrides["problem"] = mfcg.LQProblem(dim=dim)
    try:
        cfg = mfcg.preset(preset, algo, **overrides)
    except ValueError as exc:  # Config's own check of the values, e.g. langevin_steps=0
        raise UsageError(f"{'--set: ' if settings else ''}{exc}") from None
    for key in settings or {}:   # a field the algorithm ignores would only mislabel the run
        readers = mfcg.READ_ONLY_BY.get(key, mfcg.ALGOS)
        if algo not in readers:
            raise UsageError(f"--set {key}: {algo} does not read it (only {', '.join(readers)}); "
                             f"leave {algo} out or the field unset")
    return cfg


def run_argv(algo, preset, seed, out, mf, steps, settings, dim, rotated):
    """The `run` command line (after the script's name) that makes this run, or with
    --resume continues it: what reproduce starts and a stopped run tells to use."""
    argv = ["run", "--algo", algo, "--preset", preset, "--seed", str(seed), "--out", out] + (["--mf"] if mf else [])
    if steps is not None:
        argv += ["--steps", str(steps)]
    if dim != 1:
        argv += ["--dim", str(dim)]
    if rotated:
        argv.append("--rotated")
    for key, value in settings.items():
        argv += ["--set", f"{key}={value}"]
    return argv


def cmd_run(args):
    settings = {k: v[0] for k, v in parse_settings(args.set).items()}
    cfg = run_config(args.preset, args.algo, args.seed, args.mf, args.steps, settings, args.dim, args.rotated)
    out = args.out or default_run_dir(args.runs, args.preset, args.algo, args.seed, args.mf, settings, args.dim,
                                      args.rotated)
    if os.path.exists(out) and not os.path.isdir(out):
        raise UsageError(f"{out} is a file, not a run directory")
    made = claim(out)
    label = run_label(args.algo, args.mf, settings, args.dim, args.rotated)
    tag = f"{label} s{args.seed}"
    ckpt, history_path = os.path.join(out, "checkpoint.npz"), os.path.join(out, "history.json")
    saved = {"preset": args.preset, "settings": settings, "config": cfg.to_dict()}  # config.json

    def differs():  # how the run in `out` was made otherwise ('' if not)
        return rundir.made_otherwise(out, mfcg.PRESETS, args.preset, settings, cfg)
    try:
        status = run_dir_status(out, args.resume, differs)
    except UsageError:   # refused: leave the directory as it was found
        rundir.unclaim(out, made)
        raise
    state = None
    if status == "finished":
        print(f"[{tag}] {out} is finished; nothing to resume", file=sys.stderr)
        return 0
    if status == "restart":
        print(f"[{tag}] {out} never reached its first checkpoint; starting it from step 0", file=sys.stderr)
    elif status == "resume":
        try:
            state, saved_cfg = mfcg.load_checkpoint(ckpt)
        except ValueError as exc:
            raise UsageError(f"--resume: {exc}") from None
        diff = settings_diff(saved_cfg, cfg) or differs()
        if diff:
            raise UsageError(f"--resume: {out} was made with different settings ({diff}): continue it "
                             f"with the options that started it")
    else:
        write_json(os.path.join(out, "config.json"), saved)
    state = state or mfcg.init_state(cfg)
    until = state["step"] + args.stop_after if args.stop_after else None
    started, describe = time.time(), describe_for(cfg.mf_correction)
    try:
        mfcg.train(cfg, state, run_dir=out, until=until, on_step=Progress(tag, cfg.steps, describe))
    except FloatingPointError as exc:  # diverged: keep what is good, say so in one line
        write_json(history_path, state["history"])
        last = state["history"][-1]["step"] if state["history"] else 0
        kept = ("the last good checkpoint is kept" if os.path.exists(ckpt)
                else "no checkpoint had been written")
        raise UsageError(f"[{tag}] {exc}; history.json holds the evaluations up to step {last}; {kept}") from None
    if state["step"] < cfg.steps:
        write_json(history_path, state["history"])
        again = run_argv(args.algo, args.preset, args.seed, out, args.mf, args.steps, settings, args.dim, args.rotated)
        print(f"[{tag}] stopped at step {state['step']}/{cfg.steps}; continue with: "
              f"{shlex.join(['run_experiments.py', *again, '--resume'])}", file=sys.stderr)
        return 0
    metrics = dict(state["history"][-1])
    metrics.update({"algo": cfg.algo, "label": label, "settings": settings,
                    "mf_correction": cfg.mf_correction, "preset": args.preset, "seed": cfg.seed, "steps": cfg.steps,
                    "wall_seconds": state["wall_seconds"], "train_seconds": state["train_seconds"],
                    "steps_per_second": cfg.steps / state["train_seconds"],
                    "backend": backend_name(), "dtype": cfg.dtype, "peak_rss_mb": peak_rss_mb(),
                    "started_at": started, "finished_at": time.time()})
    content = pack_run(saved, metrics, state["history"], mfcg.final_curves(state, cfg))
    write_atomically(os.path.join(out, RUN_FILE), lambda fh: fh.write(content))
    if os.path.exists(history_path):  # an earlier stop's, a part of what RUN_FILE holds
        os.remove(history_path)
    print(f"[{tag}] done: {cfg.steps} steps in {state['wall_seconds']:.0f}s, "
          f"{describe(metrics)}", file=sys.stderr)
    return 0


# ---------------------------------------------------------------------------------------
# report
# ---------------------------------------------------------------------------------------

def summarise(runs):
    """Group runs by label; mean and std over seeds of every table metric."""
    groups = {}
    for r in runs:
        groups.setdefault(r["label"], []).append(r)
    known = [run_label(a, mf) for a in mfcg.ALGOS for mf in (False, True)]
    order = [label for label in known if label in groups] + [g for g in groups if g not in known]
    summary = {}
    for label in order:
        rs = groups[label]
        entry = {"n_runs": len(rs), "seeds": sorted(r["metrics"]["seed"] for r in rs),
                 "presets": sorted({r["preset"] for r in rs}),
                 "steps": sorted({r["metrics"]["steps"] for r in rs})}
        coordinates = COORDINATE_METRICS if rs[0]["config"].problem.dim > 1 else ()   # one problem per report
        lacking = [(r["path"], key) for key in coordinates for r in rs if key not in r["metrics"]]
        if lacking:   # load_run has checked TABLE_METRICS
            raise UsageError(f"{lacking[0][0]} records no {lacking[0][1]}: made before it was evaluated; run it again")
        for key in TABLE_METRICS + ("wall_seconds", "steps_per_second") + coordinates:
            vals = np.array([r["metrics"][key] for r in rs], dtype=float)
            entry[key] = {"mean": float(vals.mean()),
                          "std": float(vals.std(ddof=1)) if len(vals) > 1 else 0.0,
                          "values": vals.tolist()}
        for key, threshold in ACCURACY_THRESHOLDS.items():   # in d > 1 dimensions the worst coordinate's
            found = [time_to_accuracy(r["history"], worst_of(key, r["metrics"]), threshold) for r in rs]
            for unit, i in (("seconds", 0), ("steps", 1)):
                values = [t[i] if t else None for t in found]
                reached = [v for v in values if v is not None]
                entry[f"{unit}_to_{key}"] = {"threshold": threshold, "reached": len(reached),
                                             "median": float(np.median(reached)) if reached else None,
                                             "values": values}
        by_seed = sorted(rs, key=lambda r: r["metrics"]["seed"])  # in the order of "seeds"
        for at in EQUILIBRIA:
            entry[f"settled_{at}"] = [settled(r["history"], r["metrics"]["steps"], at) for r in by_seed]
            entry[f"settled_from_{at}"] = [settled_from(r["history"], at) for r in by_seed]
            entry[f"settled_on_average_{at}"] = [
                settled_on_average(r["history"], r["metrics"]["steps"], at, mean)
                for r in by_seed for mean in [getattr(r["config"].problem.solution(), EQUILIBRIUM_MEAN[at])]]
        entry["late_local_mean"] = [late_window(r["history"], r["metrics"]["steps"], sol.mean, sol.mean_mfg)
                                    for r in by_seed for sol in [r["config"].problem.solution()]]
        summary[label] = entry
    return summary


def results_table(summary, problem):
    """RESULTS.md: one row per algorithm, mean ± std over seeds."""
    sol = problem.solution()
    if problem.dim == 1:
        cols = [("mean_error", "dist. to m*"), ("mean_error_mfg", "dist. to m_mfg"),
                ("local_mean", "local mean"), ("local_std", "local std"),
                ("control_rmse", "control err (α̂)"), ("control_rmse_mfg", "control err (MFG)"),
                ("control_slope", "slope")]
    else:
        cols = [("mean_error_worst", "worst coord. to m*"), ("mean_error_rms", "RMS coord. to m*"),
                ("mean_error_mfg_worst", "worst coord. to m_mfg"), ("local_std", "local std"),
                ("control_rmse_worst", "worst control err (α̂)"),
                ("control_rmse_at_mfg_worst", "worst control err (MFG)"),
                ("jacobian_diag_error", "Jacobian diag. err"), ("jacobian_offdiag", "Jacobian off-diag.")]
    cols += [("value_rmse", "value err"), ("value_rmse_paper", "value err (appendix)")]
    worst = "" if problem.dim == 1 else "worst "
    tta = [f"{worst}{'control err' if k == 'control_rmse' else 'dist. to m*'} < {t} from"
           for k, t in ACCURACY_THRESHOLDS.items()]
    lines = ["| algorithm | runs | steps | " + " | ".join(c[1] for c in cols)
             + " | wall s | steps/s | " + " | ".join(tta) + " |",
             "|---" * (len(cols) + 5 + len(tta)) + "|"]
    for label, e in summary.items():
        cells = [f"{e[k]['mean']:.3f} ± {e[k]['std']:.3f}" for k, _ in cols]
        steps = ",".join(str(s) for s in e["steps"])
        times = []
        for key in ACCURACY_THRESHOLDS:
            t, n = e[f"seconds_to_{key}"], e[f"steps_to_{key}"]
            times.append(f"{t['median']:.0f} s, step {n['median']:.0f} ({t['reached']}/{e['n_runs']})"
                         if t["reached"] else f"– (0/{e['n_runs']})")
        lines.append(f"| {label} | {e['n_runs']} | {steps} | " + " | ".join(cells)
                     + f" | {e['wall_seconds']['mean']:.0f} | {e['steps_per_second']['mean']:.1f} | "
                     + " | ".join(times) + " |")
    head = (f"Mean ± std over runs (seeds). Closed form: m* = {_number(sol.mean)}, m_mfg = {_number(sol.mean_mfg)}, "
            f"limiting std {_number(sol.std)}, α̂ slope {_number(np.diag(sol.jacobian()))}. "
            + (f"'dist. to m*' is |local mean − m*|, " if problem.dim == 1 else
               f"In these d = {problem.dim} dimensions each coordinate i is judged on its own: 'worst coord. "
               f"to m*' is the largest over i of |m̃_i − m*_i|, 'RMS coord.' their root mean square, the "
               f"local std the mean over coordinates, 'worst control err' the largest over i of action i's "
               f"RMSE (MFG: against the Nash control over the Nash law), the Jacobian's the largest gap "
               f"between the actor's least-squares Jacobian and α̂'s, on and off the diagonal; ")
            + f"the local mean and std those of fresh Langevin samples of the local score network. Control "
            f"and value errors are RMSEs over x drawn from the limiting law; 'value err (appendix)' "
            f"compares with the paper's appendix formula, which is not the cost-to-go (docs/findings.md). "
            f"Time to accuracy: the median wall-clock seconds and step from which the {worst}control error stays "
            f"below {ACCURACY_THRESHOLDS['control_rmse']}" + (" (a zero control scores 0.385)" if problem.dim == 1 else "")
            + f", and the {worst}distance "
            f"to m* below {ACCURACY_THRESHOLDS['mean_error']}, to the end, checked at every evaluation, "
            f"over the runs that got there (how many, of all, in brackets).")
    near = ACCURACY_THRESHOLDS["mean_error"]
    late = ["", f"## The last {LATE_PART:.0%} of each run", "",
            f"Where the local mean spends the late window, the evaluations after step "
            f"{1 - LATE_PART:.2f} × steps: its median and interquartile range per run (in seed "
            f"order), and the share of those evaluations within {near} of m* and of m_mfg (mean over "
            f"runs). A run that wanders is judged badly by its last evaluation alone. The last "
            f"two columns are where the agents' own mean rests, its mean over each run's window "
            f"(mean over runs), and how much it wanders, its standard deviation over the window "
            f"(root mean square over runs); n/a for histories that lack it." + (
                "" if problem.dim == 1 else " In these d > 1 dimensions, where a mean is a vector, the "
                "per-run column is the worst coordinate's distance to m*, the shares are the worst "
                "coordinate's, and the agents' mean is n/a."), "",
            f"| algorithm | median local mean [IQR], per run | within {near} of m* | within {near} of m_mfg "
            f"| the agents' mean | sd of the agents' mean |",
            "|---|---|---|---|---|---|"]
    for label, e in summary.items():
        ws = e["late_local_mean"]
        per_run = "; ".join(f"{w['median']:.3f} [{w['q1']:.3f}, {w['q3']:.3f}]" for w in ws)
        def over_runs(key, combine):  # n/a where a history lacks the agents' mean
            values = [w.get(key) for w in ws]
            return "n/a" if None in values else f"{combine(values):.4f}"
        mean = over_runs("agents_mean", np.mean)
        sd = over_runs("agents_sd", lambda sds: np.sqrt(np.mean(np.square(sds))))
        late.append(f"| {label} | {per_run} | {np.mean([w['near_m_star'] for w in ws]):.2f} | "
                    f"{np.mean([w['near_m_mfg'] for w in ws]):.2f} | {mean} | {sd} |")
    late += ["", "## Settled", "",
             f"Settled at an equilibrium: at every evaluation of the last {LATE_PART:.0%}, the local mean "
             f"within {SETTLED['distance']} of its mean and the actor's mean within {SETTLED['control']} "
             f"(RMSE, over its limiting law) of its control: m* and α̂ (cooperative), m_mfg and the Nash "
             f"control (non-cooperative). Runs settled of all, the seeds that did not, and the median "
             f"step (over the settled runs) from which both stay within to the end; n/a where a "
             f"history does not record the control error over the Nash law.", "",
             "| algorithm | settled at m* | not settled (seeds) | from step | settled at m_mfg "
             "| not settled (seeds) | from step |", "|---" * 7 + "|"]
    for label, e in summary.items():
        cells = []
        for at in EQUILIBRIA:
            ok = e[f"settled_{at}"]
            if None in ok:  # made before the control error this needs was recorded
                cells += ["n/a"] * 3
                continue
            missed = [seed for seed, good in zip(e["seeds"], ok) if not good]
            steps = [n for n, good in zip(e[f"settled_from_{at}"], ok) if good and n is not None]
            cells += [f"{sum(ok)}/{len(ok)}", ", ".join(map(str, missed)) or "–",
                      f"{np.median(steps):.0f}" if steps else "–"]
        late.append(f"| {label} | " + " | ".join(cells) + " |")
    late += ["", f"Settled on average: over the same window, the mean of the local mean within "
                 f"{SETTLED['distance']} of the equilibrium's and the mean control error below "
                 f"{SETTLED['control']}. Every settled run is settled on average; the converse "
                 f"admits a learner whose estimate swings between evaluations while it is right "
                 f"on average (a single agent, AC).", "",
             "| algorithm | on average at m* | not (seeds) | on average at m_mfg | not (seeds) |",
             "|---" * 5 + "|"]
    for label, e in summary.items():
        cells = []
        for at in EQUILIBRIA:
            ok = e[f"settled_on_average_{at}"]
            missed = [seed for seed, good in zip(e["seeds"], ok) if not good]
            cells += ["n/a", "n/a"] if None in ok else [f"{sum(ok)}/{len(ok)}", ", ".join(map(str, missed)) or "–"]
        late.append(f"| {label} | " + " | ".join(cells) + " |")
    return "# Results\n\n" + head + "\n\n" + "\n".join(lines + late) + "\n"


def _band(ax, x, ys, label=None, spread="std", **kw):
    """The mean over runs as a line, with a band: ± one std, or the min–max range (which
    stays positive on a log axis)."""
    ys = np.asarray(ys)
    mean = ys.mean(axis=0)
    if len(mean) == 1:   # one evaluation: a point, which a line alone does not draw
        kw.setdefault("marker", "o")
    line, = ax.plot(x, mean, label=label, **kw)
    if len(ys) > 1:
        if spread == "range":
            lo, hi = ys.min(axis=0), ys.max(axis=0)
        else:
            sd = ys.std(axis=0, ddof=1)
            lo, hi = mean - sd, mean + sd
        ax.fill_between(x, lo, hi, color=line.get_color(), alpha=0.15, lw=0)
    return line


FIGURE_DPI = 90  # about 1,000 pixels across for a full-width figure: reads on a screen


def _png(fig):
    """A figure as the bytes of a PNG of 256 colours (a third of the bytes of full colour,
    and the same to the eye); the same figure gives the same bytes."""
    import matplotlib.pyplot as plt
    from PIL import Image  # matplotlib's own dependency
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=FIGURE_DPI, bbox_inches="tight")
    plt.close(fig)
    image = Image.open(buf).convert("RGB").quantize(colors=256, method=Image.Quantize.MEDIANCUT)
    png = io.BytesIO()
    image.save(png, format="PNG", optimize=True)
    return png.getvalue()


def _panels(plt, n, width=3.4, height=2.6):
    """A grid of n small panels, four to a row; the unused ones hidden."""
    cols = min(4, n)
    rows = -(-n // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(width * cols, height * rows), squeeze=False)
    for ax in axes.flat[n:]:
        ax.set_visible(False)
    return fig, axes.flat[:n]


def _panels_png(fig, axes, title):
    """A grid of panels (_panels) finished: the first panel's legend, the title; PNG bytes."""
    axes[0].legend(fontsize=6)
    fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    return _png(fig)


def _equilibrium_lines(ax, means, vertical=False):
    """m* and m_mfg as reference lines, labelled once."""
    line = ax.axvline if vertical else ax.axhline
    line(means[0], color="k", lw=1.2, label=f"m* = {means[0]:.3f} (MFCG)")
    line(means[1], color="k", lw=1.2, ls=":", label=f"m_mfg = {means[1]:.3f} (Nash)")


def _position(record, mf):
    """Where a run's local law is, as the figures draw it: its mean (d = 1), or in d > 1
    dimensions the worst coordinate's distance to the mean of the equilibrium its variant
    aims at (+mf: m*, plain: m_mfg)."""
    if "mean_error_worst" not in record:
        return record["local_mean"]
    return record["mean_error_worst" if mf else "mean_error_mfg_worst"]


def _control_error(record, mf):
    """A run's control error against the control of the equilibrium its variant aims at:
    α̂ with the correction, the Nash control over its own law without (older histories:
    over the MFCG law); in d > 1 dimensions, the worst coordinate's."""
    key = judged_by(record, aimed_at(mf))[1]
    return record[key] if key in record else record["control_rmse_mfg"]


# The report's figures by name (NAME.png); --figures draws some of them, or none.
FIGURES = ("learning_curves", "settled", "laws", "controls")


def make_figures(summary, runs, names=FIGURES):
    """The report's figures that `names` names (FIGURES: all four), {file name: PNG bytes}:

        learning_curves.png  per row, the local mean against training steps on the lines
                             of m* and m_mfg (d > 1: the worst coordinate's distance, _position),
                             and the control error against the control of the equilibrium the
                             row aims at (+mf: α̂; plain: the Nash one)
        settled.png          per row, the runs settled at m* and at m_mfg (SETTLED), and
                             where each run's agents rest over its late window
        laws.png             per row, the local law: Langevin samples of every run, each
                             run's score read-out, and the closed-form laws at m* and m_mfg
        controls.png         per row, the actor's mean action (mean ± std over runs) on α̂
                             and the Nash control
    """
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    problem = runs[0]["config"].problem
    by_label = {label: [r for r in runs if r["label"] == label] for label in summary}
    # one colour per algorithm and --set values; with the correction, the same colour dashed
    bases = list(dict.fromkeys(label.replace("+mf", "", 1) for label in by_label))
    style = {}
    for label, rs in by_label.items():
        i = bases.index(label.replace("+mf", "", 1))
        style[label] = dict(color=f"C{i % 10}", linestyle="--" if rs[0]["config"].mf_correction else "-")
    draw = {"learning_curves": _learning_curves_png, "settled": _settled_png, "laws": _laws_png,
            "controls": _controls_png}
    return {f"{name}.png": draw[name](plt, summary, by_label, style, problem) for name in FIGURES if name in names}


def _figure_context(problem):
    """What every figure reads of the problem: its solution, d, and (d = 1) the two
    equilibria's means."""
    sol = problem.solution()
    return sol, problem.dim, ((sol.mean, sol.mean_mfg) if problem.dim == 1 else None)


def _learning_curves_png(plt, summary, by_label, style, problem):
    sol, dim, means = _figure_context(problem)
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.2))
    for label, rs in by_label.items():
        n = min(len(r["history"]) for r in rs)
        steps = [h["step"] for h in rs[0]["history"][:n]]
        mf = rs[0]["config"].mf_correction
        _band(axes[0], steps, [[_position(h, mf) for h in r["history"][:n]] for r in rs],
              label, spread="range", **style[label])
        _band(axes[1], steps, [[_control_error(h, mf) for h in r["history"][:n]] for r in rs], label,
              spread="range", **style[label])
    if dim == 1:
        _equilibrium_lines(axes[0], means)
        lo, hi = sorted(means)
        axes[0].set_ylim(lo - 1.0, hi + 1.0)  # the equilibria in view; a run far away leaves it
        axes[0].set_title("local mean (mean and range over runs)")
    else:
        axes[0].axhline(SETTLED["distance"], color="0.5", lw=1, ls="-.", label=f"settled below {SETTLED['distance']}")
        axes[0].set_yscale("log")
        axes[0].set_title("the worst coordinate's distance to its equilibrium's mean\n(+mf: m*; plain: m_mfg; "
                          "mean and range over runs)", fontsize=10)
    axes[1].axhline(SETTLED["control"], color="0.5", lw=1, ls="-.", label=f"settled below {SETTLED['control']}")
    axes[1].set_yscale("log")
    axes[1].set_title(("control error" if dim == 1 else "the worst coordinate's control error")
                      + " against its equilibrium's control\n(+mf: α̂ at m*; plain: the Nash control at m_mfg)",
                      fontsize=10)
    for ax in axes:
        ax.set_xlabel("training step")
    axes[0].legend(fontsize=7, ncol=2 if len(by_label) > 6 else 1)
    return _png(fig)


def _settled_png(plt, summary, by_label, style, problem):
    sol, dim, means = _figure_context(problem)
    lo, hi = sorted(means) if dim == 1 else (None, None)
    labels = list(by_label)
    # where the runs' rests are drawn, farther ones at its edges: in d > 1 dimensions the
    # late window's median of the worst coordinate's distance to the row's equilibrium
    window = (lo - 0.75, hi + 0.75) if dim == 1 else (1e-3, 10.0)
    fig, axes = plt.subplots(1, 2, figsize=(12, 1.4 + 0.32 * len(labels)), sharey=True)
    y = np.arange(len(labels))[::-1]
    for yi, label in zip(y, labels):
        e = summary[label]
        ok = {at: e[f"settled_{at}"] for at in EQUILIBRIA}
        n = len(e["seeds"])
        left = 0.0
        for at, color in zip(EQUILIBRIA, ("C2", "C1")):
            if None in ok[at]:
                continue
            share = sum(ok[at]) / n
            axes[0].barh(yi, share, left=left, color=color, label=f"settled at {at}" if yi == y[0] else None)
            left += share
        text = ", ".join(f"{sum(ok[at])}/{n} at {at}" for at in EQUILIBRIA if None not in ok[at] and any(ok[at]))
        axes[0].text(1.02, yi, text or f"0/{n}", va="center", fontsize=8)
        if dim == 1:
            rests = np.array([w["agents_mean"] if w["agents_mean"] is not None else w["median"]
                              for w in e["late_local_mean"]])
        else:
            rests = np.array([np.median([_position(h, r["config"].mf_correction) for h in late_part(r["history"], r["metrics"]["steps"])])
                              for r in by_label[label]])
        inside = (rests >= window[0]) & (rests <= window[1])
        axes[1].plot(rests[inside], [yi] * inside.sum(), "o", ms=4, alpha=0.7, color=style[label]["color"])
        for edge, side, marker in ((window[0], rests < window[0], "<"), (window[1], rests > window[1], ">")):
            axes[1].plot([edge] * side.sum(), [yi] * side.sum(), marker, ms=5, alpha=0.7, color=style[label]["color"],
                         clip_on=False)
    axes[0].set_xlim(0, 1.4)   # room for the counts beside each bar; the share runs to 1
    axes[0].set_xticks([0, 0.25, 0.5, 0.75, 1])
    axes[0].set_yticks(y, labels, fontsize=8)
    axes[0].set_xlabel("share of runs settled")
    axes[0].legend(fontsize=8, loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=2, frameon=False)
    if dim == 1:
        _equilibrium_lines(axes[1], means, vertical=True)
        axes[1].set_xlabel("where each run's agents rest: their mean over the late window\n"
                           "(◀ ▶: beyond the axis)")
    else:
        axes[1].axvline(SETTLED["distance"], color="0.5", lw=1, ls="-.", label=f"settled below {SETTLED['distance']}")
        axes[1].set_xscale("log")
        axes[1].set_xlabel("the worst coordinate's distance to its equilibrium's mean, median over the late window")
    axes[1].set_xlim(*window)
    axes[1].legend(fontsize=8, loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=2, frameon=False)
    return _png(fig)


def _laws_png(plt, summary, by_label, style, problem):
    sol, dim, _ = _figure_context(problem)
    first = lambda v: float(np.atleast_1d(v)[0])  # noqa: E731  coordinate 0's, for its marginal
    fig, axes = _panels(plt, len(by_label))
    for ax, (label, rs) in zip(axes, by_label.items()):
        samples = np.concatenate([r["curves"]["local_samples"].reshape(len(r["curves"]["local_samples"]), -1)[:, 0]
                                  for r in rs])  # d > 1: coordinate 0's marginal
        samples = samples[np.isfinite(samples)]  # a diverged chain's sample is not drawn
        m0, m0_mfg, s0 = first(sol.mean), first(sol.mean_mfg), first(sol.std)
        q_lo, q_hi = np.quantile(samples, [0.005, 0.995]) if samples.size else (m0, m0)
        a, b = min(q_lo, min(m0, m0_mfg) - 3 * s0), max(q_hi, max(m0, m0_mfg) + 3 * s0)
        ax.hist(samples, bins=np.linspace(a, b, 60), density=True, alpha=0.35, color="C0",
                label=f"Langevin samples, {len(rs)} runs")
        for i, r in enumerate(r for r in rs if "local_density" in r["curves"]):  # d = 1 only
            ax.plot(r["curves"]["density_grid"], r["curves"]["local_density"], color="C1", lw=0.8,
                    alpha=0.7, label="score read-out, per run" if i == 0 else None)
        g = np.linspace(a, b, 400)
        for m, ls, name in ((m0, "-", "at m*"), (m0_mfg, ":", "at m_mfg")):
            ax.plot(g, np.exp(-0.5 * ((g - m) / s0) ** 2) / (math.sqrt(2 * math.pi) * s0),
                    "k", ls=ls, lw=1.3, label=f"closed form {name}")
        ax.set_xlim(a, b)
        ax.set_title(label, fontsize=9)
    return _panels_png(fig, axes, "The local law: learned against the closed form" + (
        "" if dim == 1 else " (the first coordinate's marginal)"))


def _controls_png(plt, summary, by_label, style, problem):
    sol, dim, _ = _figure_context(problem)
    fig, axes = _panels(plt, len(by_label))
    for ax, (label, rs) in zip(axes, by_label.items()):
        grid = rs[0]["curves"]["grid"]
        points = np.tile(np.broadcast_to(sol.mean, dim), (len(grid), 1))  # as final_curves: along coordinate 0
        points[:, 0] = grid
        _band(ax, grid, [r["curves"]["actor_mean"] for r in rs], "actor's mean action (± std)", color="C0")
        ax.plot(grid, sol.control(points)[:, 0], "k", lw=1.3, label="α̂ (MFCG)")
        ax.plot(grid, sol.control_mfg(points)[:, 0], "k:", lw=1.3, label="Nash control")
        ax.set_title(label, fontsize=9)
    return _panels_png(fig, axes, "The learned control against the closed form" + (
        "" if dim == 1 else ": the first action along the first coordinate, the others at m*"))


def cmd_report(args):
    if not args.again:
        return report(args.dirs, args.out or "results", args.allow_mixed_presets, args.figures)
    if args.out:
        raise UsageError("--again reports each folder into itself: it takes no --out")
    for folder in args.dirs:
        report(kept_runs(folder), folder, allow_mixed_presets=True, figures=args.figures)
    return 0


def parse_figures(text):
    """--figures: names from FIGURES, comma-separated, or 'none'."""
    names = [] if text == "none" else text.split(",")
    unknown = [n for n in names if n not in FIGURES]
    if unknown or len(set(names)) != len(names):
        raise argparse.ArgumentTypeError(f"expected 'none' or distinct names from {', '.join(FIGURES)}, got {text!r}")
    return tuple(names)


def figures_drawn(out):
    """The figures the report already in `out` drew (its summary.json's files), or all of
    FIGURES where `out` holds no report or an old one whose figures were named otherwise:
    what a report into `out` draws unless told."""
    if not os.path.exists(os.path.join(out, "summary.json")):
        return FIGURES
    files = set(rundir.report_files(out))
    drawn = tuple(name for name in FIGURES if f"{name}.png" in files)
    if not drawn and any(f.endswith(".png") for f in files):  # an old report's figures, named otherwise
        return FIGURES
    return drawn


def is_report_folder(path):
    """Whether `path` is a report's folder (its summary.json, and no run of its own)."""
    return (os.path.isdir(path) and os.path.isfile(os.path.join(path, "summary.json"))
            and not rundir.finished(path))


def same_settings(run, other):
    """Whether two loaded runs were made with the same preset, --set fields and Config: a
    report folder's copy of a run that is given again by name gives way to it."""
    return other is not None and all(run[k] == other[k] for k in ("preset", "settings", "config"))


def kept_runs(folder):
    """The runs a report in `folder` keeps, in the order it reported them (its
    summary.json's "copies"), as paths: what `report --again` reports."""
    path = os.path.join(folder, "summary.json")
    try:
        with open(path) as fh:
            copies = json.load(fh)["copies"]
        if not isinstance(copies, list) or not all(isinstance(c, str) for c in copies):
            raise TypeError("copies is not a list of names")
    except FileNotFoundError:
        raise UsageError(f"{folder} holds no report (no summary.json)" if os.path.isdir(folder)
                         else f"{folder} does not exist") from None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise UsageError(f"{path} lists no copies of its runs ({one_line(exc)}): report them "
                         f"from their run directories instead") from None
    return [os.path.join(folder, c) for c in copies]


def report(paths, out, allow_mixed_presets=False, figures=None):
    """The table, the figures (`figures`, names from FIGURES; None: those the report
    already in `out` drew, figures_drawn) and the runs' copies of these runs into `out`.
    A path is a run (what rundir.load_run reads) or a report folder: the runs it keeps,
    less those given again by name (the same run, made again, say)."""
    expanded, kept = [], set()   # a report folder stands for the runs it keeps
    for d in paths:
        if is_report_folder(d):
            runs = kept_runs(d)   # read once
            kept.update(runs)
            expanded += runs
        else:
            expanded.append(d)
    dirs, seen = [], set()
    for d in expanded:  # each run once, however it is spelled (D, D/, ./D, D/run.npz)
        where = os.path.realpath(os.path.join(d, RUN_FILE) if os.path.isdir(d) else d)
        if where not in seen:
            seen.add(where)
            dirs.append(d)
    runs = [rundir.load_run(d, mfcg.PRESETS, mfcg.Config, TABLE_METRICS) for d in dirs]
    given = {rundir.copy_name(r): r for r in runs if r["path"] not in kept}
    runs = [r for r in runs if not (r["path"] in kept and same_settings(r, given.get(rundir.copy_name(r))))]
    presets = sorted({r["preset"] for r in runs})
    if len(presets) > 1 and not allow_mixed_presets:
        raise UsageError(f"the runs mix presets ({', '.join(presets)}); pass "
                         f"--allow-mixed-presets to report them together")
    if len(presets) > 1:  # the same algorithm under two presets is two rows: 'b [quick]', 'b [robust]'
        for r in runs:
            r["label"] = f"{r['label']} [{r['preset']}]"
    problems = {r["config"].problem for r in runs}
    if len(problems) > 1:
        raise UsageError("the runs solve different problems (LQProblem settings differ)")
    copies = run_copies(runs)
    summary = summarise(runs)  # every reading and computing before anything in --out changes
    outputs = {"RESULTS.md": results_table(summary, runs[0]["config"].problem).encode(),
               **make_figures(summary, runs, figures_drawn(out) if figures is None else figures)}
    write_report_dir(out, copies, outputs, {"presets": presets, "runs": [r["path"] for r in runs],
                                            "algorithms": summary}, mfcg.Config)
    print(f"report: {counted(len(runs), 'run')} → {out}/RESULTS.md, summary.json, "
          f"{counted(len(outputs) - 1, 'figure')}, the runs in {out}/{rundir.RUNS_ARCHIVE}", file=sys.stderr)
    return 0


# ---------------------------------------------------------------------------------------
# scaling: several reports, one per dimension, as one table and one figure over d
# ---------------------------------------------------------------------------------------

def peak_rss_mb():
    """This process's peak resident memory in MiB (the host's; Linux reports KiB)."""
    import resource
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def scaling_rows(folders):
    """One row per learner (algorithm, variant, benchmark, --set values and the number of
    steps where it is not the preset's) and dimension, over the runs the report folders
    keep: the runs settled at the equilibrium the variant aims at (+mf: m*; plain: m_mfg),
    the seeds that did not, the median step from which they settle, steps/s, peak memory,
    and the late window's worst-coordinate errors (the median over runs of each run's
    median over its window)."""
    groups, where = {}, {}
    for folder in dict.fromkeys(os.path.realpath(f) for f in folders):   # each folder once
        for path in kept_runs(folder):
            r = rundir.load_run(path, mfcg.PRESETS, mfcg.Config, TABLE_METRICS)
            cfg, settings = r["config"], r["settings"]
            changes = dict(settings)
            if cfg.steps != mfcg.preset(r["preset"], cfg.algo).steps:   # a longer run is another learner
                changes["steps"] = cfg.steps
            name = run_label(cfg.algo, cfg.mf_correction, changes, rotated=isinstance(cfg.problem, mfcg.RotatedLQProblem))
            key = (name, r["preset"], cfg.problem.dim, cfg.seed)
            if key in where:   # two reports keep the same run: it would count twice
                raise UsageError(f"{path} and {where[key]} are the same run ({name}, {r['preset']}, "
                                 f"d = {cfg.problem.dim}, seed {cfg.seed}): give each run once")
            where[key] = path
            groups.setdefault(key[:3], []).append((r, changes))
    rows = []   # by d, then learner, preset and changes: the table reads down the dimension
    for (name, preset, dim), rs in sorted(groups.items(), key=lambda kv: (kv[0][2], kv[0][0].split()[0], kv[0][1], kv[0][0])):
        changes = " ".join(f"{k}={v}" for k, v in rs[0][1].items())
        rs = sorted((r for r, _ in rs), key=lambda r: r["metrics"]["seed"])
        cfg = rs[0]["config"]
        mf = cfg.mf_correction
        at = aimed_at(mf)
        ok = [settled(r["history"], r["metrics"]["steps"], at) for r in rs]
        average = [settled_on_average(r["history"], r["metrics"]["steps"], at,
                                      getattr(r["config"].problem.solution(), EQUILIBRIUM_MEAN[at])) for r in rs]
        late = [late_part(r["history"], r["metrics"]["steps"]) for r in rs]
        memory = [r["metrics"].get("peak_rss_mb") for r in rs]
        keys = judged_by(rs[0]["history"][0], at)   # the worst coordinate's in d > 1 dimensions
        algorithm = run_label(cfg.algo, mf, rotated=isinstance(cfg.problem, mfcg.RotatedLQProblem))   # without its changes
        rows.append({"learner": name, "algorithm": algorithm, "changes": changes, "preset": preset, "dim": dim,
                     "equilibrium": at, "runs": len(rs),
                     "seeds": [r["metrics"]["seed"] for r in rs],
                     "settled": None if None in ok else sum(ok),   # None: a history lacks the control error
                     "not_settled": [r["metrics"]["seed"] for r, o in zip(rs, ok) if o is False],
                     "settled_on_average": None if None in average else sum(average),
                     "settled_from": [settled_from(r["history"], at) for r, o in zip(rs, ok) if o],
                     "steps_per_second": float(np.mean([r["metrics"]["steps_per_second"] for r in rs])),
                     "peak_rss_mb": max((float(m) for m in memory if m is not None), default=None),
                     "distance": [float(np.median([h[keys[0]] for h in w])) for w in late],
                     "control": [float(np.median([h.get(keys[1], math.nan) for h in w])) for w in late]})
    return rows


def scaling_table(rows):
    """SCALING.md: the rows of scaling_rows as one table over d."""
    lines = ["# Over the dimension", "",
             f"One row per dimension d and learner, with what it changes from its preset (--set, steps). Settled: at every evaluation of the last {LATE_PART:.0%} the "
             f"worst coordinate's local mean within {SETTLED['distance']} of the equilibrium the variant aims at "
             f"(+mf: m*; plain: m_mfg) and its control error below {SETTLED['control']}; on average: the "
             f"window's mean of each within its threshold (settled_on_average). From step: the median "
             f"over the settled runs of the step from which they stay within. The errors: the median over runs of "
             f"each run's median over its last {LATE_PART:.0%}, the worst coordinate's. Steps/s: the mean over "
             f"runs as they ran (two at a time on this machine's cores when made by reproduce); peak memory: "
             f"the largest resident memory of the runs that record it (n/a where none does).", "",
             "| d | learner | preset | changed from the preset | settled | not settled (seeds) | on average | "
             "from step | worst distance | worst control error | steps/s | peak memory MiB |", "|---" * 12 + "|"]
    for row in rows:
        frm = f"{np.median(row['settled_from']):.0f}" if row["settled_from"] else "–"
        memory = "n/a" if row["peak_rss_mb"] is None else f"{row['peak_rss_mb']:.0f}"
        settled_cell, average_cell = ("n/a" if row[k] is None else f"{row[k]}/{row['runs']}"
                                      for k in ("settled", "settled_on_average"))
        lines.append(f"| {row['dim']} | {row['algorithm']} | {row['preset']} | {row['changes'] or '–'} | {settled_cell} | "
                     f"{', '.join(map(str, row['not_settled'])) or '–'} | {average_cell} | {frm} | "
                     f"{np.median(row['distance']):.3f} | {np.median(row['control']):.3f} | "
                     f"{row['steps_per_second']:.1f} | {memory} |")
    return "\n".join(lines) + "\n"


def best_rows(rows):
    """Per algorithm (with its variant; the coupled benchmark's apart) and d, the row of
    scaling_rows whose runs settled most: the most settled, then the most settled on
    average, then the most runs, then the smallest median worst distance."""
    best = {}
    for row in rows:
        key = (row["algorithm"], row["dim"])
        rank = (row["settled"] or 0, row["settled_on_average"] or 0, row["runs"], -float(np.median(row["distance"])))
        if key not in best or rank > best[key][0]:
            best[key] = (rank, row)
    return [row for _, row in best.values()]


SCALING_STYLE = {"ac": ("C3", "D"), "b": ("C0", "o"), "m": ("C1", "s"), "drl": ("C2", "^")}   # colour, marker


def scaling_figure(rows):
    """scaling.png: each learner (algorithm and variant) on the isotropic benchmark, at each
    d in its configuration that settled most (best_rows): every run's late worst-coordinate
    distance and control error against d (log scale), with the settled thresholds. Filled
    markers: +mf, judged at m*; open: plain, at m_mfg. Every configuration: SCALING.md."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.4))
    shown = [row for row in best_rows(rows) if " rotated" not in row["algorithm"]]
    order = [f"{a}{v}" for a in SCALING_STYLE for v in ("+mf", "")]
    learners = [name for name in order if any(row["algorithm"] == name for row in shown)]
    dims, labelled = sorted({row["dim"] for row in rows}), set()
    for row in sorted(shown, key=lambda r: (learners.index(r["algorithm"]), r["dim"])):
        name, i = row["algorithm"], learners.index(row["algorithm"])
        colour, marker = SCALING_STYLE[name.split("+")[0]]
        label = None if name in labelled else f"{name} (at {row['equilibrium']})"
        labelled.add(name)
        x = row["dim"] * 2 ** (0.07 * (i - (len(learners) - 1) / 2))   # side by side on the log axis
        for ax, key in zip(axes, ("distance", "control")):
            ax.plot([x] * len(row[key]), row[key], ls="none", marker=marker, ms=4.5, color=colour, alpha=0.75,
                    mfc=colour if "+mf" in name else "none", label=label)
    for ax, key, title in ((axes[0], "distance", "the worst coordinate's distance to its equilibrium's mean"),
                           (axes[1], "control", "the worst coordinate's control error")):
        ax.axhline(SETTLED[key], color="0.5", lw=1, ls="-.", label=f"settled below {SETTLED[key]}")
        ax.set_xscale("log", base=2)
        ax.set_xticks(dims, [str(d) for d in dims])
        ax.minorticks_off()
        ax.set_yscale("log")
        ax.set_xlabel("dimension d")
        ax.set_title(f"{title}\n(median over each run's last {LATE_PART:.0%}; one point per run)", fontsize=10)
    fig.suptitle("Each learner at each d in the configuration that settled most (every one: SCALING.md)", fontsize=11)
    handles, names = axes[0].get_legend_handles_labels()   # below both panels: it covers no point
    fig.legend(handles, names, fontsize=8, ncol=4, loc="upper center", bbox_to_anchor=(0.5, 0.02), frameon=False)
    fig.tight_layout()
    return _png(fig)


def cmd_scaling(args):
    rundir.check_out_folder(args.out)
    rundir.check_replace(args.out, ("SCALING.md", "scaling.png", "scaling.json"), args.replace)
    rows = scaling_rows(args.dirs)
    dims = sorted({row["dim"] for row in rows})
    outputs = {"SCALING.md": scaling_table(rows).encode(), "scaling.png": scaling_figure(rows)}
    os.makedirs(args.out, exist_ok=True)
    for name, content in outputs.items():
        write_atomically(os.path.join(args.out, name), lambda fh, c=content: fh.write(c))
    write_json(os.path.join(args.out, "scaling.json"), {"reports": args.dirs, "rows": rows})
    print(f"scaling: {len(rows)} rows over d = {', '.join(map(str, dims))} → {args.out}/SCALING.md, scaling.png",
          file=sys.stderr)
    return 0


# ---------------------------------------------------------------------------------------
# reproduce
# ---------------------------------------------------------------------------------------

def cmd_reproduce(args):
    rundir.check_report_out(args.out)  # before any run starts
    jobs, dirs, reused = [], [], []
    variants = [v == "mf" for v in args.variants.split(",")]
    algos = args.algos.split(",") if args.algos is not None else list(mfcg.NAMED_PRESETS[args.preset])
    unknown = [a for a in algos if a not in mfcg.ALGOS]
    if unknown or len(set(algos)) != len(algos):
        raise UsageError(f"--algos {args.algos}: expected distinct names from {', '.join(mfcg.ALGOS)}")
    sweep = parse_settings(args.set, sweep=True)
    grid = [dict(zip(sweep, values)) for values in itertools.product(*sweep.values())]
    for algo, mf, settings, seed in itertools.product(algos, variants, grid, args.seeds):
        out = default_run_dir(args.runs, args.preset, algo, seed, mf, settings, args.dim, args.rotated)
        cfg = run_config(args.preset, algo, seed, mf, args.steps, settings, args.dim, args.rotated)  # checks the values
        dirs.append(out)
        cmd = [sys.executable, os.path.abspath(__file__)] + run_argv(algo, args.preset, seed, out, mf, args.steps,
                                                                     settings, args.dim, args.rotated)
        if os.path.exists(os.path.join(out, "config.json")):  # reuse or resume only a run made with these settings
            differs = rundir.made_otherwise(out, mfcg.PRESETS, args.preset, settings, cfg)
            if differs:
                raise UsageError(f"{out} was made with different settings ({differs}); "
                                 f"move it away or pass another --runs (results are never overwritten)")
        if rundir.finished(out):
            reused.append(out)
            continue
        if os.path.exists(os.path.join(out, "checkpoint.npz")):
            cmd.append("--resume")
        jobs.append((out, cmd))
    for out in reused:  # told only once every existing run has passed the settings check
        print(f"reproduce: {out} is finished; reusing it", file=sys.stderr)
    if args.dry_run:  # for a scheduler: the runs left to do, one shell command a line
        for _, cmd in jobs:
            print(shlex.join(cmd))
        print(f"reproduce: seeds {seeds_text(args.seeds)}: {len(jobs)} run(s) to do, {len(reused)} finished; "
              "the same command without --dry-run reports them once all are done", file=sys.stderr)
        return 0
    failed = run_processes(jobs, args.jobs, "reproduce")
    if failed:
        raise UsageError(f"{len(failed)} run(s) failed, see {', '.join(f + '.log' for f in failed)}")
    return report(dirs, args.out, figures=args.figures)


# ---------------------------------------------------------------------------------------
# bench
# ---------------------------------------------------------------------------------------

# Timed steps per algorithm: whole cycles, so M's Langevin (every 50 steps) and DRL's PPO
# update (every 256) are counted at their real frequency.
BENCH_STEPS = {"ac": 20, "b": 10, "m": 100, "drl": 256}


def bench_algo(algo, steps, xp, preset="paper"):
    """Steps/s of one algorithm at a preset's sizes (the paper's by default) after a 1-step
    warm-up, and the time per step spent in each phase. Two windows of `steps` steps: the
    first times whole steps as training runs them (nothing waits for the device inside a
    step), the second times each phase (PhaseTimer). Step 0 (the warm-up) does M's first
    Langevin refresh, so the windows hold steps/50 of them each, as a long run does."""
    phases = {"langevin": (mfcg.langevin_refresh,), "scores": (mfcg.score_update,),
              "actor_critic": (mfcg.actor_critic_update, mfcg.ppo_update),
              "environment": (mfcg.act_and_step,)}
    cfg = mfcg.preset(preset, algo, eval_every=10**9, checkpoint_every=10**9)
    state = mfcg.init_state(cfg, xp)
    mfcg.train(cfg, state, until=1)
    sync(xp)
    t0 = time.perf_counter()
    mfcg.train(cfg, state, until=1 + steps)
    sync(xp)
    total = time.perf_counter() - t0
    with PhaseTimer(phases, xp) as timer:
        t0 = time.perf_counter()
        mfcg.train(cfg, state, until=1 + 2 * steps)
        sync(xp)
        total_phased = time.perf_counter() - t0
    per_step = {k: v / steps for k, v in timer.totals.items()}
    per_step["other"] = total_phased / steps - sum(per_step.values())
    refreshes = sum(1 for n in range(1 + steps, 1 + 2 * steps) if n % cfg.langevin_every == 0)
    tanh_evals = refreshes * 2 * cfg.langevin_steps * cfg.n_samples * mfcg.hidden_units(cfg)[2]
    return {"steps_per_second": steps / total, "seconds_per_step": per_step, "timed_steps": steps,
            "batch": cfg.batch, "langevin_us_per_million_tanh":
            1e12 * per_step["langevin"] * steps / tanh_evals if tanh_evals else math.nan}


def bare_tanh_us_per_million(xp, cfg):
    """The machine's own elementwise limit: xp.tanh over a (k, H) float32 array, in place."""
    a = xp.asarray(np.random.default_rng(0).standard_normal((cfg.n_samples, mfcg.hidden_units(cfg)[2])),
                   dtype=cfg.dtype)
    for _ in range(20):
        xp.tanh(a, out=a)
    sync(xp)
    reps = 500
    t0 = time.perf_counter()
    for _ in range(reps):
        xp.tanh(a, out=a)
    sync(xp)
    return 1e6 * (time.perf_counter() - t0) / reps / (a.size / 1e6)


def bench(algos, steps, preset, xp):
    """bench_algo for each algorithm (steps: None for BENCH_STEPS), with the sizes, the
    device, the host and the bare tanh speed: what bench.json holds."""
    cfg = mfcg.preset(preset, "b" if "b" in mfcg.NAMED_PRESETS[preset] else algos[0])
    result = {"backend": backend_name(), "dtype": cfg.dtype, "machine": machine(),
              "device": device_name(xp)[0], "preset": preset,
              "sizes": {"batch": cfg.batch, "n_samples": cfg.n_samples, "langevin_steps": cfg.langevin_steps,
                        "minibatch": mfcg.NAMED_PRESETS[preset].get("m", cfg).minibatch},
              "bare_tanh_us_per_million": bare_tanh_us_per_million(xp, cfg), "algorithms": {}}
    for algo in algos:
        n = steps or BENCH_STEPS[algo]
        print(f"bench: {algo} ({n} steps, {preset} preset) ...", file=sys.stderr, flush=True)
        result["algorithms"][algo] = bench_algo(algo, n, xp, preset)
    return result


def bench_table(result):
    """BENCH.md: steps/s and milliseconds per step by phase, one row per algorithm."""
    z = result["sizes"]
    lines = [f"{result['preset'].capitalize()} preset (B = {z['batch']}, k = {z['n_samples']}, "
             f"{z['langevin_steps']} Langevin iterations per refresh, M: b = {z['minibatch']}; "
             f"{result['backend']}, {result['dtype']}, {result['device']}"
             + ("" if result["device"] == result["machine"] else f"; host {result['machine']}") + "). "
             f"Steps/s of whole steps; milliseconds per step by phase, each phase timed apart "
             f"(on a GPU with the device synchronised around it). Bare tanh: "
             f"{result['bare_tanh_us_per_million']:.0f} µs per million.",
             "", "| algorithm | steps/s | langevin | scores | actor–critic | environment | other "
             "| Langevin µs per million tanh |", "|---|---|---|---|---|---|---|---|"]
    for algo, r in result["algorithms"].items():
        ph = r["seconds_per_step"]
        cells = " | ".join(f"{1e3 * ph[k]:.1f}" for k in ("langevin", "scores", "actor_critic", "environment", "other"))
        lines.append(f"| {algo} | {r['steps_per_second']:.1f} | {cells} | {r['langevin_us_per_million_tanh']:.0f} |")
    return "\n".join(lines) + "\n"


def cmd_bench(args):
    xp = get_xp()
    device, slug = device_name(xp)
    out = os.path.join(args.out, slug, args.preset)
    rundir.check_out_folder(args.out)
    own = list(mfcg.NAMED_PRESETS[args.preset])
    if args.algo and args.algo not in own:
        raise UsageError(f"--algo {args.algo}: the {args.preset} preset is for {', '.join(own)} only")
    rundir.check_replace(out, ("bench.json", "BENCH.md"), args.replace)
    os.makedirs(out, exist_ok=True)  # before the benchmark runs: a bad --out fails at once
    result = bench([args.algo] if args.algo else own, args.steps, args.preset, xp)
    write_json(os.path.join(out, "bench.json"), result)
    write_text(os.path.join(out, "BENCH.md"), bench_table(result))
    print(bench_table(result))
    return 0


# ---------------------------------------------------------------------------------------
# trace: the score loss's trace, exact against Hutchinson's estimate, by dimension
# ---------------------------------------------------------------------------------------

TRACE_DIMS = "1,2,4,8,16,32,64,100"


def _seconds(call, reps, xp):
    """Seconds per call(), over `reps` calls after one warm-up, the device synchronised."""
    call()
    sync(xp)
    t0 = time.perf_counter()
    for _ in range(reps):
        call()
    sync(xp)
    return (time.perf_counter() - t0) / reps


def trace_costs(d, batch=1024, probes=32, reps=20, hidden=128, seed=0):
    """What the trace of the score-matching loss costs in d dimensions, for a score network
    at its initial weights and x ~ N(0, I) (batch, d): seconds per loss-and-gradient with
    the exact trace (nets.exact_trace_forward: O(H) a sample after one O(dH) contraction)
    and with Hutchinson's estimate, Gaussian and Rademacher probes; and for each estimate,
    over `probes` independent draws, its gradient's variance and its mean's distance to the
    exact gradient, both relative to the exact gradient's squared norm (norm): the estimate
    is unbiased, and its variance is what it costs the learner."""
    xp, rng = get_xp(), np.random.default_rng(seed)
    p = nets.init_score(d, rng, hidden=hidden, dtype=np.float32, xp=xp)
    x = xp.asarray(rng.standard_normal((batch, d)), dtype=np.float32)

    def gradient(z=None):
        grads = nets.score_loss_and_grad(p, x, z)[1]
        return np.concatenate([np.asarray(to_numpy(g), dtype=np.float64).ravel() for g in grads.values()])

    exact = gradient()
    out = {"d": d, "seconds": {"exact": _seconds(lambda: nets.score_loss_and_grad(p, x), reps, xp)}}
    draws = {"gaussian": lambda: rng.standard_normal((batch, d)),
             "rademacher": lambda: rng.choice([-1.0, 1.0], (batch, d))}
    for name, draw in draws.items():
        zs = [xp.asarray(draw(), dtype=np.float32) for _ in range(probes)]
        out["seconds"][name] = _seconds(lambda: nets.score_loss_and_grad(p, x, zs[0]), reps, xp)
        grads = np.array([gradient(z) for z in zs])
        out[f"variance_{name}"] = float(((grads - grads.mean(axis=0)) ** 2).sum(axis=1).mean() / (exact @ exact))
        out[f"bias_{name}"] = float(np.linalg.norm(grads.mean(axis=0) - exact) / np.linalg.norm(exact))
    return out


def cmd_trace(args):
    try:
        dims = [int(v) for v in args.dims.split(",")]
    except ValueError:
        raise UsageError(f"--dims {args.dims}: expected comma-separated integers") from None
    if min(dims) < 1:
        raise UsageError(f"--dims {args.dims}: dimensions are positive integers")
    xp = get_xp()
    device, slug = device_name(xp)
    out = os.path.join(args.out, slug)
    rundir.check_out_folder(args.out)
    rundir.check_replace(out, ("trace.json", "TRACE.md"), args.replace)
    os.makedirs(out, exist_ok=True)
    rows = []
    for d in dims:
        print(f"trace: d = {d} ...", file=sys.stderr, flush=True)
        rows.append(trace_costs(d, args.batch, args.probes, args.reps))
    write_json(os.path.join(out, "trace.json"), {"device": device, "machine": machine(), "backend": backend_name(),
                                                 "batch": args.batch, "probes": args.probes, "rows": rows})
    lines = [f"Score-matching loss and gradient, a score network of 128 hidden units at its initial weights, "
             f"x ~ N(0, I), {args.batch} samples ({backend_name()}, float32, {device}). Milliseconds per "
             f"loss and gradient; each estimate's gradient variance over {args.probes} probe draws, and its "
             f"mean's distance to the exact gradient (unbiased: about √(variance/{args.probes})), relative to "
             f"the exact gradient's (squared) norm.", "",
             "| d | exact ms | Gaussian ms | Rademacher ms | variance, Gaussian | variance, Rademacher "
             "| bias, Gaussian | bias, Rademacher |", "|---" * 8 + "|"]
    for r in rows:
        t = r["seconds"]
        lines.append(f"| {r['d']} | {1e3 * t['exact']:.2f} | {1e3 * t['gaussian']:.2f} | {1e3 * t['rademacher']:.2f} | "
                     f"{r['variance_gaussian']:.3g} | {r['variance_rademacher']:.3g} | {r['bias_gaussian']:.3g} | "
                     f"{r['bias_rademacher']:.3g} |")
    write_text(os.path.join(out, "TRACE.md"), "\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


# ---------------------------------------------------------------------------------------
# The memory of the local score network (docs/findings.md, "Which equilibrium")
# ---------------------------------------------------------------------------------------

STREAM_MEMORY_SCORES, STREAM_MEMORY_AGENT = 21, 22  # random-stream purposes of `memory`
MEMORY_GAINS = (0.25, 1.0, 10.0)  # the schedule's levels: end, start and peak of lr_factor


def memory_weight(response, gamma):
    """w = Σ_{j≥0} γʲ h_j, the share of the group's term that enters a single agent's return
    (docs/benchmark.md §3), from the step response s_j = Σ_{i≤j} h_i: how far the local
    mean m̃ paid for j steps after the agent's states shift has moved, per unit shift. By
    summation by parts, with J the last index (the tail's further moves are neglected):
        w = (1 − γ) Σ_{j<J} γʲ s_j + γᴶ s_J.
    A moving average updated after the reward, s_j = 1 − (1 − κ)ʲ, gives κγ/(1 − γ(1 − κ))."""
    s = np.asarray(response, dtype=float)
    g = gamma ** np.arange(len(s))
    return float((1.0 - gamma) * (g[:-1] @ s[:-1]) + g[-1] * s[-1])


def _fork(state):
    """A copy of what score_update and langevin_refresh read and write."""
    return {"params": {k: v.copy() for k, v in state["params"].items()},
            "adam": {k: {"t": a["t"], "m": a["m"].copy(), "v": a["v"].copy()}
                     for k, a in state["adam"].items()},
            "field": state["field"],  # read, never written in place
            **{k: state[k].copy() for k in ("pool_global", "pool_local")}}


def score_memory(cfg, gain, warmup=20_000, reps=8, horizon=1000, gap=500, shift=0.1,
                 langevin_steps=None):
    """Step responses of AC's local mean m̃ and global mean m to its agent's states, as
    train_ac computes them: each step one score update of both networks at the agent's
    state, then a Langevin refresh (L4–8). One agent's global law is learned from its own
    states as well, so part of the global term enters its return too (w_global).

    The agent follows the MFCG control α̂ (so its states are those of the solution). After
    `warmup` steps the networks have learned the agent's law. Then, `reps` times, the
    pipeline runs `gap` steps and forks: the main chain goes on with the agent's states,
    a copy with the same states shifted by `shift`, both fed the same random numbers, for
    `horizon` steps; the difference of their m̃ (and of their m), per unit shift, is one
    step response. The main chain then goes on from where it is, so the forks' windows do
    not overlap. Rates are the config's times `gain` (constant); `langevin_steps` overrides
    the iterations per refresh after the warm-up. Returns the step responses of m̃ and of
    m, each (reps, horizon)."""
    pb, sol, xp = cfg.problem, mfcg.LQSolution.of(cfg.problem), mfcg.get_xp()
    lrs = {"score_global": gain * cfg.lr_global, "score_local": gain * cfg.lr_local}
    state = mfcg.init_state(cfg)
    x = state["x"]

    def advance(st, x_in, n, run_cfg):
        rng = mfcg.make_rng((cfg.seed, n, STREAM_MEMORY_SCORES), xp)
        mfcg.score_update(st, run_cfg, x_in, lrs, rng)
        field = mfcg.langevin_refresh(st, run_cfg, rng)
        return np.array([float(field.m_tilde[0]), float(field.m[0])])

    def agent_step(x, n):
        return pb.step(x, sol.control(x), mfcg.make_rng((cfg.seed, n, STREAM_MEMORY_AGENT), xp))

    for n in range(warmup):
        advance(state, x, n, cfg)
        x = agent_step(x, n)
    n, after = warmup, dataclasses.replace(cfg, langevin_steps=langevin_steps or cfg.langevin_steps)
    responses = []
    for _ in range(reps):
        for _ in range(gap):
            advance(state, x, n, after)
            x, n = agent_step(x, n), n + 1
        shifted, response = _fork(state), []
        for _ in range(horizon):
            m0 = advance(state, x, n, after)
            m1 = advance(shifted, x + shift, n, after)
            response.append((m1 - m0) / shift)
            x, n = agent_step(x, n), n + 1
        responses.append(response)
    responses = np.array(responses)
    return responses[..., 0], responses[..., 1]


def cmd_memory(args):
    """Measure w (the local score network's memory) and w_global (the global one's) for AC
    at the schedule's rate levels and write memory.json and MEMORY.md, with the settled
    means they predict: μ(w, w_global) plain and μ(1 + w, w_global) with the correction,
    which adds the group's whole term (LQSolution.mean_own_influence)."""
    if args.reps < 2:
        raise UsageError(f"--reps must be at least 2 (a standard error needs two forks), got {args.reps}")
    if os.path.exists(os.path.join(args.out, "memory.json")):
        raise UsageError(f"{args.out} holds a memory measurement already; choose another --out")
    cfg = mfcg.preset(args.preset, "ac", seed=args.seed)
    gamma, sol = cfg.problem.discount, mfcg.LQSolution.of(cfg.problem)
    iterations = args.langevin_steps or cfg.langevin_steps
    rows = []
    for gain in MEMORY_GAINS:
        t0 = time.perf_counter()
        local, glob = score_memory(cfg, gain, warmup=args.warmup, reps=args.reps,
                                   horizon=args.horizon, langevin_steps=args.langevin_steps)
        row = {"gain": gain}
        for key, responses in (("w", local), ("w_global", glob)):
            ws = [memory_weight(r, gamma) for r in responses]      # w is linear in the response
            row.update({key: float(np.mean(ws)), f"{key}_stderr": float(np.std(ws, ddof=1) / math.sqrt(len(ws))),
                        f"{key}_per_fork": ws})
        w, w_g, mean = row["w"], row["w_global"], local.mean(axis=0)
        row.update({"mu_plain": sol.mean_own_influence(w, w_g), "mu_mf": sol.mean_own_influence(1 + w, w_g),
                    "s_at": {str(j): float(mean[j]) for j in (0, 10, 100, len(mean) - 1) if j < len(mean)},
                    "seconds": time.perf_counter() - t0})
        rows.append(row)
        print(f"memory: gain {gain}: w = {w:.4f} ± {row['w_stderr']:.4f}, w_global = {w_g:.4f} ± "
              f"{row['w_global_stderr']:.4f}, μ(w, w_global) = {row['mu_plain']:.3f}", flush=True)
    os.makedirs(args.out, exist_ok=True)
    write_json(os.path.join(args.out, "memory.json"), {"preset": args.preset, "seed": args.seed,
        "warmup": args.warmup, "reps": args.reps, "horizon": args.horizon,
        "langevin_steps": iterations, "rows": rows,
        "m_star": sol.mean, "m_mfg": sol.mean_mfg})
    lines = [f"# Memory of AC's score networks ({args.preset} preset, seed {args.seed}, "
             f"{iterations} Langevin iterations per refresh)", "",
             "w = Σ γʲ h_j from the mean step response s_j of the local mean m̃ to a 0.1 shift of the "
             "agent's states, per unit shift, over the forks (± its standard error; the range over the "
             "forks beside it); w_g the same for the global mean m, which one agent also learns from its "
             "own states; μ is the settled mean they predict (s_j: m̃'s response).", "",
             "| rates × | w | w, range over forks | w_g | w_g, range over forks | s₁₀ | s₁₀₀ | s at the horizon "
             "| μ(w, w_g), plain | μ(1 + w, w_g), +mf |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        s_at = [r["s_at"].get(str(j)) for j in (10, 100, args.horizon - 1)]
        spread = " | ".join(f"{r[k]:.3f} ± {r[k + '_stderr']:.3f} | {min(r[k + '_per_fork']):.3f} to "
                            f"{max(r[k + '_per_fork']):.3f}" for k in ("w", "w_global"))
        lines.append(f"| {r['gain']} | {spread} | " + " | ".join("–" if v is None else f"{v:.3f}" for v in s_at)
                     + f" | {r['mu_plain']:.3f} | {r['mu_mf']:.3f} |")
    lines += ["", f"m* = {sol.mean:.3f}, m_mfg = {sol.mean_mfg:.3f}."]
    write_text(os.path.join(args.out, "MEMORY.md"), "\n".join(lines) + "\n")
    return 0


# ---------------------------------------------------------------------------------------
# command line
# ---------------------------------------------------------------------------------------

class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, no usage dump
        raise UsageError(message)


def seeds_text(seeds):
    """The seeds as --seeds would read them back, a range where they run on by one: a dry
    run names them, so that '--seeds 2' (a count: seeds 0-1) is not taken for seed 2."""
    if len(seeds) > 1 and seeds == list(range(seeds[0], seeds[-1] + 1)):
        return f"{seeds[0]}-{seeds[-1]}"
    return ",".join(map(str, seeds)) + ("," if len(seeds) == 1 else "")


MAX_SEEDS = 1000   # more is a typo: a count or range of runs no study here comes near


def parse_seeds(text):
    """--seeds: a count from 0 ('5': seeds 0–4), an inclusive range ('20-23') or a list
    ('0,5,9'; one seed '7,') → the seeds, in order, at most MAX_SEEDS of them; anything
    else is a one-line error."""
    try:
        if "," in text:
            items = text.split(",")
            if items[-1].strip() == "":   # '7,': one seed
                items.pop()
            if any(not s.strip() for s in items):
                raise ValueError("a list has a seed between each two commas")
            seeds = [int(s) for s in items]
        elif "-" in text.strip()[1:]:
            lo, hi = (int(s) for s in text.split("-", 1))
            if hi < lo:
                raise ValueError("a range runs upwards")
            seeds = list(range(lo, hi + 1))
        else:
            count = int(text)
            if count < 1:
                raise ValueError("a count is at least 1")
            seeds = list(range(count))
    except ValueError as exc:
        why = str(exc) if "invalid literal" not in str(exc) else "expected a count (5), a range (20-23) or a list (0,5,9)"
        raise UsageError(f"--seeds {text}: {why}") from None
    if not seeds or min(seeds) < 0 or len(set(seeds)) != len(seeds):
        raise UsageError(f"--seeds {text}: expected distinct non-negative seeds")
    if len(seeds) > MAX_SEEDS:
        raise UsageError(f"--seeds {text}: {len(seeds)} seeds, at most {MAX_SEEDS} (a run each)")
    return seeds


def _problem_options(parser):
    """--dim and --rotated: the problem `run` and `reproduce` train on."""
    parser.add_argument("--dim", type=int, default=1, metavar="D",
                        help="the isotropic problem in D dimensions (default: 1, the paper's)")
    parser.add_argument("--rotated", action="store_true",
                        help="the coupled benchmark instead: D different 1-d problems, rotated "
                             "(mfcg.rotated_problem; default: off)")


def _figures_option(parser):
    parser.add_argument("--figures", type=parse_figures, metavar="NAMES",
                        help=f"the figures to draw, comma-separated from {', '.join(FIGURES)}, or 'none' "
                             f"(default: those the report already in the folder drew; all for a new one)")


def _replace_option(parser, files):
    parser.add_argument("--replace", action="store_true",
                        help=f"write over the {files} an earlier call left there "
                             f"(default: refuse; nothing is overwritten unasked)")


def build_parser():
    p = _Parser(prog="run_experiments.py", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)
    presets = ", ".join(mfcg.PRESETS)
    r = sub.add_parser("run", help="train one algorithm into its own directory",
                       description="Train one algorithm into its own directory: config.json first, "
                                   "checkpoint.npz as it goes, run.npz when finished.")
    r.add_argument("--algo", required=True, choices=mfcg.ALGOS, help="the algorithm (required)")
    r.add_argument("--preset", default="quick", choices=mfcg.PRESETS, metavar="PRESET",
                   help=f"the named settings: {presets} (default: quick; docs/training.md)")
    r.add_argument("--seed", type=int, default=0, help="the random seed (default: 0)")
    r.add_argument("--mf", action="store_true", help="add the mean-field correction to the reward (default: off)")
    r.add_argument("--steps", type=int, help="the number of steps (default: the preset's)")
    _problem_options(r)
    r.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="change one Config field of the preset, e.g. langevin_steps=5; repeatable (default: none)")
    r.add_argument("--out", help="the run directory (default: RUNS/PRESET/LABEL-sSEED)")
    r.add_argument("--runs", default="runs", help="the root of the default run directories (default: runs)")
    r.add_argument("--resume", action="store_true",
                   help="continue the run in --out from its checkpoint (default: start a new run)")
    r.add_argument("--stop-after", type=int, metavar="N",
                   help="stop, with a checkpoint, after N more steps (default: run to the end)")
    rep = sub.add_parser("report", help="table and figures from finished runs",
                         description="RESULTS.md, summary.json, four figures and one compact copy of "
                                     "each run, all in runs.zip (PRESET/NAME.npz), into --out.")
    rep.add_argument("dirs", nargs="+", metavar="RUN",
                     help="finished runs: run directories, a report's copies "
                          "(REPORT/runs.zip/PRESET/NAME.npz), or report folders (the runs each "
                          "keeps); with --again, report folders")
    rep.add_argument("--out", help="where the report goes (default: results)")
    rep.add_argument("--allow-mixed-presets", action="store_true",
                     help="report runs of several presets together, a row per preset (default: refuse)")
    rep.add_argument("--again", action="store_true",
                     help="report each given report folder again from the runs it keeps, into "
                          "itself (default: off)")
    _figures_option(rep)
    rp = sub.add_parser("reproduce", help="every algorithm × seed, in parallel, then report",
                        description="Train every algorithm × variant × seed (× --set value) as its own "
                                    "process, J at a time, reusing finished runs and resuming "
                                    "checkpointed ones, then report them all.")
    rp.add_argument("--preset", default="quick", choices=mfcg.PRESETS, metavar="PRESET",
                    help=f"the named settings: {presets} (default: quick)")
    own = "; ".join(f"{name}: {','.join(algos)}" for name, algos in mfcg.NAMED_PRESETS.items()
                    if tuple(algos) != mfcg.ALGOS)
    rp.add_argument("--algos", help=f"comma-separated algorithms (default: the preset's: "
                                    f"{','.join(mfcg.ALGOS)}; {own})")
    rp.add_argument("--variants", default="plain,mf", choices=["plain,mf", "mf,plain", "plain", "mf"], metavar="VARIANTS",
                    help="plain (no correction), mf (with the mean-field correction) or plain,mf (default: plain,mf)")
    rp.add_argument("--seeds", default="5", type=parse_seeds, metavar="SEEDS",
                    help="a count from 0 (5: seeds 0-4), a range (20-23) or a list (0,5,9; one seed: 7,) "
                         "(default: 5)")
    rp.add_argument("--steps", type=int, help="every run's number of steps (default: the preset's)")
    _problem_options(rp)
    rp.add_argument("--set", action="append", metavar="KEY=V1,V2,...",
                    help="change a Config field of the preset, a run for each value; several --set "
                         "run every combination (default: none)")
    rp.add_argument("--jobs", type=int, default=os.cpu_count() or 1, metavar="J",
                    help=f"runs at a time, one core each (default: the cores, {os.cpu_count() or 1})")
    rp.add_argument("--runs", default="runs", help="the root of the run directories (default: runs)")
    rp.add_argument("--out", default="results", help="where the report goes (default: results)")
    rp.add_argument("--dry-run", action="store_true",
                    help="print each run's command, one per line, and run nothing (default: off)")
    _figures_option(rp)
    b = sub.add_parser("bench", help="steps/s at the paper's sizes, with a per-phase breakdown",
                       description="Steps/s of each algorithm and its milliseconds per step by phase, "
                                   "on this machine's device: bench.json and BENCH.md.")
    b.add_argument("--algo", choices=mfcg.ALGOS, help="one algorithm (default: all the preset's)")
    b.add_argument("--preset", default="paper", choices=mfcg.PRESETS, metavar="PRESET",
                   help=f"whose sizes: {presets} (default: paper)")
    b.add_argument("--steps", type=int, help="timed steps (default: a whole cycle per algorithm)")
    b.add_argument("--out", default="results/bench",
                   help="the root: bench.json and BENCH.md go to OUT/DEVICE/PRESET (default: results/bench)")
    _replace_option(b, "OUT/DEVICE/PRESET/bench.json and BENCH.md")
    tr = sub.add_parser("trace", help="the score loss's exact trace against Hutchinson's estimate, by dimension",
                        description="Time per score-matching loss and gradient with the exact trace and with "
                                    "Hutchinson's estimate (Gaussian, Rademacher probes), and the estimate's "
                                    "gradient variance, for each dimension: trace.json and TRACE.md.")
    tr.add_argument("--dims", default=TRACE_DIMS, help=f"comma-separated dimensions (default: {TRACE_DIMS})")
    tr.add_argument("--batch", type=int, default=1024, help="samples per loss (default: 1024)")
    tr.add_argument("--probes", type=int, default=32, help="probe draws for the variance (default: 32)")
    tr.add_argument("--reps", type=int, default=20, help="timed calls per estimate (default: 20)")
    tr.add_argument("--out", default="results/trace", help="the root: files go to OUT/DEVICE (default: results/trace)")
    _replace_option(tr, "OUT/DEVICE/trace.json and TRACE.md")
    sc = sub.add_parser("scaling", help="several reports, one per dimension, as one table and figure over d",
                        description="SCALING.md, scaling.png and scaling.json from the runs several "
                                    "reports keep: per learner and dimension, the runs settled, from which "
                                    "step, the worst coordinate's errors, steps/s and peak memory.")
    sc.add_argument("dirs", nargs="+", metavar="REPORT", help="report folders (each made by report or reproduce)")
    sc.add_argument("--out", default="results/scaling", help="where the files go (default: results/scaling)")
    _replace_option(sc, "OUT/SCALING.md, scaling.png and scaling.json")
    mem = sub.add_parser("memory", help="the memory of AC's score networks (w local, w_g global), and "
                                        "the settled mean they predict",
                         description="How much of the group's terms AC's own score networks pass to its "
                                     "agent (w local, w_g global), at three rate levels: memory.json and "
                                     "MEMORY.md.")
    with_ac = [name for name in mfcg.PRESETS if "ac" in mfcg.NAMED_PRESETS[name]]   # dims has none for AC
    mem.add_argument("--preset", default="lean", choices=with_ac, metavar="PRESET",
                     help=f"the named settings, one with AC's: {', '.join(with_ac)} (default: lean)")
    mem.add_argument("--seed", type=int, default=0, help="the random seed (default: 0)")
    mem.add_argument("--warmup", type=int, default=20_000, help="steps before the first fork (default: 20000)")
    mem.add_argument("--reps", type=int, default=8, help="forks, averaged (default: 8)")
    mem.add_argument("--horizon", type=int, default=1000, help="steps followed after each fork (default: 1000)")
    mem.add_argument("--langevin-steps", type=int,
                     help="Langevin iterations per refresh after the warm-up (default: the preset's)")
    mem.add_argument("--out", default="results/memory",
                     help="where memory.json and MEMORY.md go (default: results/memory)")
    return p


def main(argv=None):
    """The command line. Every error a user can cause or meet ends here as one line: exit 2,
    or 130 for an interrupt (Ctrl-C, SIGTERM)."""
    signal.signal(signal.SIGINT, signal.default_int_handler)  # loaded: Ctrl-C is KeyboardInterrupt again
    keep_freed_memory()
    try:
        args = build_parser().parse_args(argv)
        for name in ("steps", "dim", "jobs", "stop_after", "warmup", "reps", "horizon", "langevin_steps",
                     "batch", "probes"):
            value = getattr(args, name, None)
            if value is not None and value < 1:
                raise UsageError(f"--{name.replace('_', '-')} must be a positive integer, got {value}")
        if getattr(args, "seed", None) is not None and args.seed < 0:
            raise UsageError(f"--seed must be a non-negative integer, got {args.seed}")
        commands = {"run": cmd_run, "report": cmd_report, "reproduce": cmd_reproduce,
                    "bench": cmd_bench, "memory": cmd_memory, "trace": cmd_trace, "scaling": cmd_scaling}
        return commands[args.command](args)
    except UsageError as exc:
        print(f"run_experiments.py: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:
        print(f"run_experiments.py: {str(exc) or 'interrupted'}", file=sys.stderr)
        return 130
    except OSError as exc:  # a read-only or full disk, a path below a file, ...
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"run_experiments.py: error: {where}{exc.strerror or one_line(exc)}", file=sys.stderr)
        return 2
    except MemoryError as exc:
        print(f"run_experiments.py: error: out of memory ({one_line(exc)})", file=sys.stderr)
        return 2


if __name__ == "__main__":
    code = main()
    if code == 130:  # interrupted: leave now, without waiting for a worker thread's step
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)
