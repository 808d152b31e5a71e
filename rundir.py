"""rundir: a run's bookkeeping, apart from the algorithm.

Why apart: mfcg.py is the algorithm a student reads; what is here keeps a run safe and
resumable and changes no number it computes:
    settings     check_field_types, check_problem, check_config: every field of an
                 LQProblem or a Config of its type and within its range, or a ValueError
                 naming it
    files        write_atomically, through which the checkpoint and the command line's
                 files are written: a file holds its old content or its new, never a part
    checkpoints  save_checkpoint, load_checkpoint: one .npz that resumes a run bit for bit
    run files    pack_run, unpack_run: a finished run as one compressed file (config,
                 metrics, history, the curves a report draws), lossless and byte-stable;
                 load_run reads it (or the four files runs had before)
    the loop     Loop: the steps' numbers, Ctrl-C, and the checks for non-finite or runaway
                 values before every evaluation and checkpoint; the trainers call evaluate
                 and Loop.checkpoint in sight, at the end of every step
    the command line's directories (run_experiments.py): a run directory's lock (claim),
                 the config it was made with (saved_config, made_otherwise), a report folder
                 that never loses a run's record (write_report_dir, run_copies), what `run`
                 does with a directory (run_dir_status), runs as processes J at a time
                 (run_processes), progress lines, UsageError
It knows the training state as the plain dict mfcg.init_state makes, but does not import
mfcg (mfcg imports it, and imports run one way: autograd_lite → nets → fastpaths → rundir
→ mfcg → run_experiments): what it needs from there (Config, MeanField) is passed in.
"""
import contextlib
import io
import json
import math
import os
import re
import signal
import subprocess
import sys
import threading
import time
import zipfile
from concurrent.futures import ThreadPoolExecutor, as_completed

import numpy as np

from autograd_lite import get_xp, to_numpy, xp_of
from fastpaths import FlatParams, sync

# ---------------------------------------------------------------------------------------
# Settings: every field of the type its default has, and within its range
# ---------------------------------------------------------------------------------------

# The types a field may hold, as errors name them. Config and LQProblem check their values
# by this table (check_field_types); the command line reads --set values from text by it
# (value_from_text), so both accept and refuse the same things.
FIELD_TYPES = {bool: "true or false", int: "an integer", float: "a finite number", str: "a string"}


def _is(kind, value):
    """Whether value may stand in a field of type `kind`: booleans only from booleans,
    integers only from integers (not booleans or floats), numbers from integers or floats
    and finite, strings from strings."""
    boolean = isinstance(value, (bool, np.bool_))
    if kind is bool:
        return boolean
    if kind is int:
        return isinstance(value, (int, np.integer)) and not boolean
    if kind is float:
        return (isinstance(value, (int, float, np.integer, np.floating)) and not boolean
                and math.isfinite(value))
    return isinstance(value, kind)


def check_field_types(obj):
    """Raise ValueError naming the first field of a dataclass whose value is not of its
    default's type (FIELD_TYPES). So mf_correction="False" or seed=1.5 are refused rather
    than silently misread."""
    for name, f in obj.__dataclass_fields__.items():
        kind, value = type(f.default), getattr(obj, name)
        if kind in FIELD_TYPES and not _is(kind, value):
            raise ValueError(f"{name} must be {FIELD_TYPES[kind]}, got {value!r}")


def value_from_text(kind, text):
    """A field's value of type `kind` read from the command line's text: true/false/1/0
    for booleans, Python's int() and float() for numbers (finite; −0.0 read as 0.0, so one
    value has one label), the text itself for strings. ValueError saying what it takes."""
    booleans = {"true": True, "1": True, "false": False, "0": False}
    try:
        value = booleans[text.lower()] if kind is bool else kind(text)
    except (KeyError, ValueError):
        raise ValueError(f"takes {FIELD_TYPES[kind]}, got {text!r}") from None
    if not _is(kind, value):
        raise ValueError(f"must be finite, got {text!r}")
    return value + 0.0 if kind is float else value


def check_problem(pb):
    """Raise ValueError naming the first field of an LQProblem (mfcg.py) of the wrong type
    or out of its range, or the coefficient that leaves it without a closed form."""
    check_field_types(pb)
    checks = [
        (pb.beta > 0, f"beta must be > 0, got {pb.beta}"),
        (pb.sigma >= 0, f"sigma must be >= 0, got {pb.sigma}"),
        (pb.dt > 0, f"dt must be > 0, got {pb.dt}"),
        (isinstance(pb.dim, (int, np.integer)) and pb.dim >= 1,
         f"dim must be an integer >= 1, got {pb.dim!r}"),
        (pb.K > 0, f"K = c1 + c3 + c1_tilde must be > 0 for the closed form, got {pb.K}"),
        (pb.D != 0, "D = c1(1 - c2) + c1_tilde(1 - c2_tilde)^2 + c3 + c5_tilde must be "
                    "nonzero for the closed form, got 0"),
    ]
    for ok, message in checks:
        if not ok:
            raise ValueError(message)


def check_rotated_problem(pb, coordinate_class):
    """Raise ValueError naming what is wrong with a RotatedLQProblem (mfcg.py): its
    coordinates must be 1-d problems (coordinate_class, mfcg.LQProblem) sharing β and Δt,
    its rotation a seed."""
    coords = pb.coordinates
    if not isinstance(coords, tuple) or not coords or not all(isinstance(c, coordinate_class) for c in coords):
        raise ValueError("coordinates must be a non-empty tuple of LQProblems")
    if any(c.dim != 1 for c in coords):
        raise ValueError("each of the coordinates must be a 1-d LQProblem (dim=1)")
    if len({(c.beta, c.dt) for c in coords}) > 1:
        raise ValueError("the coordinates must share beta and dt: one clock and one discount")
    if not _is(int, pb.rotation) or pb.rotation < 0:
        raise ValueError(f"rotation must be an integer >= 0 (a seed; 0: none), got {pb.rotation!r}")


def check_config(cfg, algos, problem_class):
    """Raise ValueError naming the first field of a Config (mfcg.py) that is of the wrong
    type (check_field_types) or out of its range, or a combination of fields that cannot
    run; `algos` are the algorithms it may name, `problem_class` what its problem must be
    (mfcg.LQProblem)."""
    if not isinstance(cfg.problem, problem_class):
        raise ValueError(f"problem must be an LQProblem or a RotatedLQProblem, got {type(cfg.problem).__name__}")
    check_field_types(cfg)
    if cfg.algo not in algos:
        raise ValueError(f"algo must be one of {algos}, got {cfg.algo!r}")
    positive_ints = ["steps", "batch", "minibatch", "n_samples", "langevin_steps",
                     "langevin_every", "rollout", "ppo_epochs", "ppo_minibatches", "hidden_actor",
                     "hidden_critic", "hidden_score", "eval_every", "eval_samples",
                     "eval_langevin_steps", "checkpoint_every"]
    for name in positive_ints:
        value = getattr(cfg, name)
        if value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if value >= 2 ** 31:  # sizes and counts reach the CUDA kernels as 32-bit ints
            raise ValueError(f"{name} must be below 2**31, got {value!r}")
    for name in ["eps_langevin", "lr_actor", "lr_critic", "lr_global", "lr_local", "std_floor",
                 "score_warmup_lr", "lr_peak", "lr_final"]:
        if not getattr(cfg, name) > 0:
            raise ValueError(f"{name} must be > 0, got {getattr(cfg, name)!r}")
    if not 0 <= cfg.eval_chains < 2 ** 31:
        raise ValueError(f"eval_chains must be 0 (the pools' n_samples) or a positive integer below 2**31, "
                         f"got {cfg.eval_chains!r}")
    for name in ["target_every", "grad_clip", "ent_coef", "score_warmup", "restart_beyond", "hidden_per_dim"]:
        if not getattr(cfg, name) >= 0:
            raise ValueError(f"{name} must be >= 0, got {getattr(cfg, name)!r}")
    if cfg.target_every and cfg.algo == "drl":  # nothing would read it (see train_drl)
        raise ValueError(f"target_every must be 0 for drl: Algorithm 4's GAE bootstraps with "
                         f"the critic itself, a target would have no reader (got {cfg.target_every})")
    if not 0 <= cfg.ppo_clip < 1:
        raise ValueError(f"ppo_clip must be in [0, 1) (0: no clipping), got {cfg.ppo_clip}")
    if not 0 <= cfg.gae_lambda <= 1:
        raise ValueError(f"gae_lambda must be in [0, 1], got {cfg.gae_lambda}")
    if cfg.seed < 0:
        raise ValueError(f"seed must be >= 0, got {cfg.seed}")
    if cfg.actor_gradient not in ("score", "pathwise"):
        raise ValueError(f"actor_gradient must be 'score' or 'pathwise', got {cfg.actor_gradient!r}")
    if cfg.actor_gradient == "pathwise" and cfg.algo == "drl":
        raise ValueError("actor_gradient must be 'score' for drl: PPO's clipped surrogate is a "
                         "score-function gradient")
    if cfg.dtype not in ("float32", "float64"):
        raise ValueError(f"dtype must be 'float32' or 'float64', got {cfg.dtype!r}")
    if cfg.algo == "drl" and cfg.ppo_minibatches > cfg.rollout * cfg.batch:
        raise ValueError(f"ppo_minibatches ({cfg.ppo_minibatches}) must be at most the rollout's "
                         f"rollout × batch = {cfg.rollout * cfg.batch} transitions")
    if cfg.antithetic and (cfg.batch % 2 or (cfg.algo == "m" and cfg.minibatch % 2)):
        raise ValueError(f"antithetic needs an even batch (M: and minibatch) to pair the agents' "
                         f"normals, got batch={cfg.batch}, minibatch={cfg.minibatch}")
    if cfg.algo == "m" and cfg.batch % cfg.minibatch:
        raise ValueError(f"batch ({cfg.batch}) must be divisible by minibatch ({cfg.minibatch})")


# ---------------------------------------------------------------------------------------
# Writing a file atomically
# ---------------------------------------------------------------------------------------

def write_atomically(path, write):
    """Call write(fh) on a temporary file, path + ".tmp", then rename it over `path`. The
    rename is atomic, so `path` holds the old content or the new, never a part. On any
    failure (a full disk, a signal) the temporary file is removed, `path` is untouched and
    the error propagates."""
    tmp = f"{path}.tmp"
    try:
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp)  # a leftover, or a link: never written through
        with open(tmp, "xb") as fh:
            write(fh)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.remove(tmp)
        raise


# ---------------------------------------------------------------------------------------
# Checkpoints: one .npz, written atomically, that resumes a run bit-for-bit (both backends)
# ---------------------------------------------------------------------------------------

CHECKPOINT_FORMAT = 2  # 1: per-array Adam moments and a saved NumPy generator state
NETWORKS = ("actor", "critic", "score_global", "score_local")   # of mfcg.init_state's state
STATE_ARRAYS = ("x", "pool_global", "pool_local")   # with the MeanField's, in a checkpoint


def flat_moment(value, params):
    """An Adam moment as one NumPy vector in the order of the network's arrays, whether the
    state keeps it flat (FlatParams) or per array (Config.readable)."""
    if isinstance(value, dict):
        return np.concatenate([to_numpy(value[k]).reshape(-1) for k in params])
    return to_numpy(value)


def save_checkpoint(path, state, cfg):
    """Write every array of the state, the step, the history and the config to `path` (an
    .npz), atomically. No random-generator state: the streams are keyed by (seed, step)
    (mfcg.training_rng), so the step is all they need. The Adam moments are written flat,
    in the order of the network's arrays, whether the state keeps them so (FlatParams) or
    per array (Config.readable): a checkpoint has one layout, whichever wrote it."""
    arrays = {}
    for net, params in state["params"].items():
        for k, v in params.items():
            arrays[f"params/{net}/{k}"] = to_numpy(v)
        for moment in ("m", "v"):
            arrays[f"adam/{net}/{moment}"] = flat_moment(state["adam"][net][moment], params)
        arrays[f"adam/{net}/t"] = np.array(state["adam"][net]["t"])
    if state["target"] is not None:
        for k, v in state["target"].items():
            arrays[f"target/{k}"] = to_numpy(v)
    for key in STATE_ARRAYS:
        arrays[key] = to_numpy(state[key])
    for key, value in state["field"]._asdict().items():
        arrays[key] = to_numpy(value)
    for key in state["buffer"][0] if state["buffer"] else ():
        arrays[f"buffer/{key}"] = to_numpy(xp_of(state["buffer"][0][key]).stack([e[key] for e in state["buffer"]]))
    meta = {"format": CHECKPOINT_FORMAT, "step": state["step"], "config": cfg.to_dict(),
            "history": state["history"], "buffer_len": len(state["buffer"]),
            "loss_log": _read_loss_log(state["loss_log"]),
            "wall_seconds": state["wall_seconds"], "train_seconds": state["train_seconds"]}
    arrays["meta"] = np.array(json.dumps(meta))
    write_atomically(path, lambda fh: np.savez(fh, **arrays))


def load_checkpoint(path, config_class, field_class, xp=None):
    """Read a checkpoint written by save_checkpoint → (state, cfg), cfg a config_class
    (mfcg.Config) and the state's field a field_class (mfcg.MeanField). The networks are
    FlatParams, or plain dicts of arrays with per-array Adam moments where cfg.readable.
    Raises ValueError, in one line, for a file that is not one (empty, truncated,
    corrupted, or another .npz)."""
    xp = xp or get_xp()
    try:
        with np.load(path, allow_pickle=False) as z:
            data = {k: z[k] for k in z.files}  # reading every member checks its CRC
        meta = json.loads(str(data.pop("meta")))
        if not isinstance(meta, dict):
            raise TypeError(f"its meta is a {type(meta).__name__}, not a dict")
    except FileNotFoundError:
        raise
    except Exception as exc:  # noqa: BLE001 — zip, npy, pickle, JSON and key errors alike
        raise ValueError(f"{path} is not a checkpoint of this project ({one_line(exc)})") from None
    if meta.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{path} was written by an older version of mfcg (format "
                         f"{meta.get('format', 1)}, this one reads {CHECKPOINT_FORMAT}: flat Adam "
                         f"moments and streams keyed by the step); it cannot be resumed")
    try:
        cfg = config_class(**meta["config"])
    except ValueError as exc:
        raise ValueError(f"{path} holds settings this version of mfcg refuses: {exc}") from None
    except Exception as exc:  # noqa: BLE001 — not a config at all
        raise ValueError(f"{path} is not a checkpoint of this project ({one_line(exc)})") from None
    try:
        state = {"step": meta["step"], "history": meta["history"], "params": {}, "adam": {},
                 "target": None, "buffer": [],
                 "loss_log": {k: [tuple(e) for e in log] for k, log in meta["loss_log"].items()},
                 "wall_seconds": meta["wall_seconds"],
                 "train_seconds": meta["train_seconds"]}

        def named(prefix):  # the arrays saved under prefix, in the order they were saved
            arrays = {k[len(prefix):]: xp.asarray(v) for k, v in data.items() if k.startswith(prefix)}
            if not arrays:
                raise KeyError(f"no arrays {prefix}*")
            return arrays if cfg.readable else FlatParams(arrays)

        for net in NETWORKS:
            params = state["params"][net] = named(f"params/{net}/")
            state["adam"][net] = {"t": int(data[f"adam/{net}/t"])}
            for moment in ("m", "v"):
                flat = xp.asarray(data[f"adam/{net}/{moment}"])
                state["adam"][net][moment] = _unflatten(flat, params) if cfg.readable else flat
        if cfg.target_every:
            state["target"] = named("target/")
        for key in STATE_ARRAYS:
            state[key] = xp.asarray(data[key])
        state["field"] = field_class(*(xp.asarray(data[key]) for key in field_class._fields))
        keys = [k[len("buffer/"):] for k in data if k.startswith("buffer/")]
        state["buffer"] = [{k: xp.asarray(data[f"buffer/{k}"][i]) for k in keys} for i in range(meta["buffer_len"])]
    except Exception as exc:  # noqa: BLE001 — a member missing or of the wrong shape
        raise ValueError(f"{path} is not a checkpoint of this project ({one_line(exc)})") from None
    return state, cfg


def _unflatten(flat, params):
    """A flat array in the layout of FlatParams(params) → arrays keyed and shaped like params."""
    out, offset = {}, 0
    for k, v in params.items():
        out[k] = flat[offset:offset + v.size].reshape(v.shape).copy()
        offset += v.size
    if offset != flat.size:
        raise ValueError(f"a flat Adam moment of {flat.size} entries for parameters of {offset}")
    return out


def one_line(exc):
    """An exception as 'Type: message' on one line, for error messages that quote it."""
    text = " ".join(str(exc).split()) or "no message"
    return f"{type(exc).__name__}: {text[:200]}"


# ---------------------------------------------------------------------------------------
# The training loop's bookkeeping, shared by the four trainers
# ---------------------------------------------------------------------------------------

# A state is sane when no parameter, agent state or Langevin sample exceeds this in absolute
# value. The LQ benchmark lives within a few units of the origin (m* = 0.24, std 0.32, the
# largest weight of a hand-built exact actor is about 1,200); a run past 1e6 has diverged
# even if every number is still finite, and no checkpoint is written from it.
SANE_BOUND = 1e6


def _read_loss_log(loss_log):
    """name → [(step, loss)] with the losses as Python floats: one transfer per name."""
    out = {}
    for name, log in loss_log.items():
        xp = xp_of(*(v for _, v in log))
        host = to_numpy(xp.stack([xp.asarray(v) for _, v in log])) if log else []
        out[name] = [(n, float(v)) for (n, _), v in zip(log, host)]
    return out


class Loop:
    """The bookkeeping around a trainer's steps, which the trainer shows as it happens:

        loop = Loop(state, cfg, run_dir, on_eval, until, on_step)
        for n in loop.steps():              # n = state["step"] … min(until, cfg.steps) − 1
            ...                             # step n
            if loop.end_step(losses):       # every cfg.eval_every steps, and the last
                loop.record(evaluate(state, cfg))
            loop.checkpoint()               # every cfg.checkpoint_every steps, and the stop

    Nothing inside a step waits for the device: losses are kept on it, and the checks
    (finite losses, parameters, pools and agents, all within SANE_BOUND) run before every
    evaluation and every checkpoint, so none is made from a diverged state. The checkpoint
    is written only with a run directory. Ctrl-C or SIGTERM lets the current step finish,
    writes the checkpoint, then raises KeyboardInterrupt: a checkpoint always holds a whole
    number of steps, so resuming from it is exact. A second Ctrl-C stops at once, mid-step,
    and writes nothing (the last checkpoint stays)."""

    def __init__(self, state, cfg, run_dir=None, on_eval=None, until=None, on_step=None):
        if cfg.readable == isinstance(state["params"]["actor"], FlatParams):
            raise ValueError(f"a state made for readable={not cfg.readable} (its networks are "
                             f"{'FlatParams' if cfg.readable else 'plain dicts'}) cannot train with "
                             f"readable={cfg.readable}: make it with init_state or load_checkpoint")
        self.state, self.cfg, self.on_eval, self.on_step = state, cfg, on_eval, on_step
        self.until = cfg.steps if until is None else min(until, cfg.steps)
        self.path = os.path.join(run_dir, "checkpoint.npz") if run_dir else None
        if run_dir:
            os.makedirs(run_dir, exist_ok=True)
        self._mark = (state["step"], state["train_seconds"])  # where steps/s is measured from
        self.interrupted = self._stop = self._evaluated = False
        self._phase = "step"  # "step" until end_step, "after" until checkpoint reads the
        # flag, then "stopping" (writing the stop's checkpoint) or "step" again

    def _on_signal(self, signum, frame):
        step, phase = self.state["step"], self._phase
        if phase == "stopping" and not self.path:  # nothing to write: the stop is immediate
            phase = "after"
        if self.interrupted:
            where = {"step": f"during step {step + 1}: stopped at once, no checkpoint written",
                     "after": f"after step {step}: stopped at once, no checkpoint written",
                     "stopping": f"while checkpointing step {step}: stopped at once"}[phase]
            kept = (f" ({self.path} holds step {step}'s checkpoint, or the one before if its write had "
                    f"not finished)" if phase == "stopping" else f" (the last one in {self.path} stays)")
            raise KeyboardInterrupt(f"interrupted again {where}" + (kept if self.path else ""))
        self.interrupted = signal.Signals(signum).name
        last = min(step + 1 if phase == "step" else step, self.until)
        print(f"{self.interrupted}: stopping after step {last}, then "
              + ("checkpointing" if self.path else "stopping") + " (Ctrl-C again to stop at once)",
              file=sys.stderr, flush=True)

    def steps(self):
        """Yield the step numbers, with this loop's handlers of Ctrl-C and SIGTERM in place."""
        state, previous = self.state, {}
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                previous[sig] = signal.signal(sig, self._on_signal)
        self._wall0, self._start = state.get("wall_seconds", 0.0), time.perf_counter()
        try:
            while state["step"] < self.until:
                n, self._t0 = state["step"], time.perf_counter()
                yield n
                if state["step"] != n + 1 or self._phase == "after":
                    raise RuntimeError("every step ends with loop.end_step(...), then loop.checkpoint()")
                if self._stop:
                    raise KeyboardInterrupt(f"interrupted after step {n + 1}"
                                            + ("" if self._stop == "SIGINT" else f" ({self._stop})")
                                            + (f"; checkpoint written to {self.path}" if self.path else ""))
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def end_step(self, losses=None):
        """Count the step, with its losses (kept as losses() keeps them). True when it is to
        be evaluated: every cfg.eval_every steps and at the last step; the state has then
        been checked, and the caller hands evaluate's metrics to record()."""
        state, cfg = self.state, self.cfg
        if losses is not None:
            self.losses(losses)
        n = state["step"] + 1
        self._evaluated = n % cfg.eval_every == 0 or n == cfg.steps
        if self._evaluated or n % cfg.checkpoint_every == 0:
            sync(xp_of(state["x"]))  # so the steps' time includes the work they queued
        state["train_seconds"] += time.perf_counter() - self._t0
        state["step"], self._phase = n, "after"
        if self._evaluated:
            state["wall_seconds"] = self._wall0 + time.perf_counter() - self._start
            self._checked_losses = self._check_finite()
        return self._evaluated

    def record(self, metrics):
        """Append an evaluation record to the history: the step, the wall time, the metrics
        (mfcg.evaluate's), the mean of each loss since the last record and steps/s; then
        on_eval(record)."""
        state, log = self.state, self._checked_losses
        rec = {"step": state["step"], "wall_seconds": state["wall_seconds"], **metrics}
        rec.update({f"loss_{k}": math.fsum(v for _, v in log[k]) / len(log[k]) for k in sorted(log)})
        steps, seconds = state["step"] - self._mark[0], state["train_seconds"] - self._mark[1]
        rec["steps_per_second"] = steps / seconds if seconds > 0 else math.nan
        state["history"].append(rec)
        state["loss_log"] = {}
        self._mark = (state["step"], state["train_seconds"])
        if self.on_eval:
            self.on_eval(rec)

    def checkpoint(self):
        """After the step and its evaluation: on_step(state), then the checkpoint every
        cfg.checkpoint_every steps and where the loop stops (its last step, or after Ctrl-C
        or SIGTERM, when the loop then raises KeyboardInterrupt)."""
        state, cfg, n = self.state, self.cfg, self.state["step"]
        state["wall_seconds"] = self._wall0 + time.perf_counter() - self._start
        if self.on_step:
            self.on_step(state)
        self._stop = self.interrupted  # read once: a signal from here on ends step n + 1
        self._phase = "stopping" if self._stop else "step"
        if self.path and (n % cfg.checkpoint_every == 0 or self._stop or n == self.until):
            if not self._evaluated:  # an evaluation at this step has just checked the state
                self._check_finite()
            save_checkpoint(self.path, state, cfg)

    def losses(self, losses):
        """Keep this step's losses (0-d arrays, left on the device) with the step number
        n + 1 they belong to; nothing is read until the next check."""
        log, step = self.state["loss_log"], self.state["step"] + 1
        for name, value in losses.items():
            log.setdefault(name, []).append((step, value))

    def _check_finite(self):
        """Raise FloatingPointError naming the first non-finite loss and its step (losses
        are logged per step), else the first non-finite parameter array, pool or agent
        state, with the steps since the last evaluation it can have appeared in. Returns the
        loss log read to the host, for the evaluation record."""
        state = self.state
        first = None
        losses = _read_loss_log(state["loss_log"])
        for name, log in losses.items():
            bad = next((n for n, v in log if not math.isfinite(v)), None)
            if bad is not None and (first is None or bad < first[0]):
                first = (bad, name)
        if first:
            raise FloatingPointError(f"non-finite {first[1]} loss at step {first[0]}")
        since = state["history"][-1]["step"] + 1 if state["history"] else 1
        where = f"in steps {since}–{state['step']}" if since < state["step"] else f"at step {state['step']}"
        for net, params in state["params"].items():
            for k, v in params.items():
                if not bool(xp_of(v).isfinite(v).all()):
                    raise FloatingPointError(f"non-finite parameter {net}.{k} {where}")
        for key in ("pool_global", "pool_local", "x"):
            if not bool(xp_of(state[key]).isfinite(state[key]).all()):
                raise FloatingPointError(f"non-finite {key} {where}: the score network or the policy diverges")
        bounded = [(f"parameters of {net}", list(p.values())) for net, p in state["params"].items()]
        bounded += [("agents' states x", [state["x"]]), ("Langevin pools", [state["pool_global"], state["pool_local"]])]
        for name, arrays in bounded:
            largest = max(float(abs(a).max()) for a in arrays)
            if largest > SANE_BOUND:
                raise FloatingPointError(f"the {name} reached |{largest:.3g}| > {SANE_BOUND:g} {where}: "
                                         f"the run diverges")
        return losses

# ---------------------------------------------------------------------------------------
# The command line's run directories and reports (run_experiments.py)
# ---------------------------------------------------------------------------------------

class UsageError(Exception):
    """A problem with what the user asked for: the command line reports it in one line, exit 2."""


def write_text(path, text):
    """Write a string, atomically (write_atomically)."""
    write_atomically(path, lambda fh: fh.write(text.encode()))


def write_json(path, obj):
    """Write obj as JSON, atomically (write_atomically)."""
    write_text(path, json.dumps(obj, indent=1))


LOCK_FILE = ".lock"
# What a run directory can hold when its run never reached its first checkpoint: the same
# command starts it again from step 0 (a diverged run's history.json is regenerated).
NEVER_STARTED = {"config.json", "history.json", "checkpoint.npz.tmp", "config.json.tmp", "history.json.tmp"}
_HELD = []  # lock file descriptors, open (and so locked) until the process exits


def claim(run_dir):
    """Create run_dir if needed and hold an exclusive lock on it (flock on run_dir/.lock)
    for the life of this process: a second process on the same directory gets one line
    naming the holder. The lock goes with the process, however it ends. Returns what the
    claim made (for unclaim): whether run_dir and its lock file were new."""
    import fcntl
    import socket
    made = (not os.path.exists(run_dir), not os.path.exists(os.path.join(run_dir, LOCK_FILE)))
    os.makedirs(run_dir, exist_ok=True)
    fd = os.open(os.path.join(run_dir, LOCK_FILE), os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        holder = os.read(fd, 200).decode(errors="replace").strip() or "another process"
        os.close(fd)
        raise UsageError(f"{run_dir} is in use by {holder}: one process per run directory") from None
    os.ftruncate(fd, 0)
    os.write(fd, f"pid {os.getpid()} on {socket.gethostname()}".encode())
    _HELD.append(fd)
    return made


def unclaim(run_dir, made):
    """Undo what claim made (its return value `made`) in a directory a run was refused:
    the lock file, and the directory itself if the claim created it and it is empty, so
    that a refused command leaves nothing behind."""
    new_dir, new_lock = made
    if new_lock:
        os.remove(os.path.join(run_dir, LOCK_FILE))
    if new_dir and not os.listdir(run_dir):
        os.rmdir(run_dir)


def saved_config(run_dir, presets, config_class):
    """(preset name, --set settings, Config) a run directory was made with, from its
    config.json; the preset must be one of `presets`."""
    path = os.path.join(run_dir, "config.json")
    try:
        with open(path) as fh:
            saved = json.load(fh)
        config = saved["config"]
    except FileNotFoundError:
        raise UsageError(f"{run_dir} has no config.json: not a run directory") from None
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise UsageError(f"{path} is not a run's config.json ({one_line(exc)})") from None
    if saved.get("preset") not in presets:
        raise UsageError(f"{path} names no preset of this version ({saved.get('preset')!r}; "
                         f"expected one of {', '.join(presets)})")
    try:
        return saved["preset"], saved.get("settings", {}), config_class(**config)
    except ValueError as exc:
        raise UsageError(f"{path} holds settings this version refuses: {exc}") from None
    except (KeyError, TypeError, AttributeError) as exc:
        raise UsageError(f"{path} is not a run's config.json ({one_line(exc)})") from None


def settings_diff(saved, cfg):
    """The names of the Config fields in which two configurations differ, comma-separated."""
    a, b = saved.to_dict(), cfg.to_dict()
    return ", ".join(k for k in b if a.get(k) != b[k])


def made_otherwise(run_dir, presets, preset, settings, cfg):
    """How the run in run_dir differs from one made now with this preset, --set settings and
    Config: '' where it does not, else the differing names (a Config can be equal while the
    preset or the --set fields, and so the run's label, differ)."""
    saved_preset, saved_settings, saved_cfg = saved_config(run_dir, presets, type(cfg))
    diff = [settings_diff(saved_cfg, cfg)]
    if saved_preset != preset:
        diff.append(f"preset {saved_preset}, not {preset}")
    if saved_settings != settings:
        diff.append(f"--set {saved_settings}, not {settings}")
    return "; ".join(d for d in diff if d)


# ---------------------------------------------------------------------------------------
# A finished run as one file: what a report keeps and reads
# ---------------------------------------------------------------------------------------

RUN_FILE = "run.npz"   # in a finished run's directory; a report keeps it in RUNS_ARCHIVE
RUNS_ARCHIVE = "runs.zip"   # a report's runs in one file: member PRESET/NAME.npz, a RUN_FILE each
RUN_FORMAT = 1
# What report reads, by part of the run; a run without one of these is refused by name.
RUN_KEYS = {"metrics": ("label", "seed", "steps", "wall_seconds", "steps_per_second"),
            "history": ("step", "wall_seconds", "mean_error", "control_rmse", "value_rmse", "local_mean"),
            "curves": ("grid", "neg_critic", "actor_mean", "global_samples", "local_samples")}
# The four files a finished run directory held before RUN_FILE (read, never written).
OLD_RUN_FILES = ("config.json", "metrics.json", "history.json", "curves.npz")


def _column(values, key):
    """One history field over the evaluations as the smallest array that holds it exactly:
    integers as int64, numbers as float32 where every value is a float32, else float64."""
    if any(isinstance(v, bool) or not isinstance(v, (int, float)) for v in values):
        raise ValueError(f"history field {key!r} holds a value that is not a number")
    if all(isinstance(v, int) for v in values):
        return np.array(values, dtype=np.int64)
    if any(isinstance(v, int) for v in values):
        raise ValueError(f"history field {key!r} holds integers and floats: it would come back as floats")
    return _smallest(np.array(values, dtype=np.float64))


def _smallest(a):
    """A float64 array as float32 where that loses nothing (NaN included), else as it is."""
    if a.dtype == np.float64 and np.array_equal(a.astype(np.float32).astype(np.float64), a, equal_nan=True):
        return a.astype(np.float32)
    return a


def _records(columns):
    """Columns of equal length → one structured array, a field per column."""
    table = np.empty(len(next(iter(columns.values()))), dtype=[(k, c.dtype) for k, c in columns.items()])
    for k, c in columns.items():
        table[k] = c
    return table


def pack_run(saved, metrics, history, curves):
    """A finished run as the bytes of one compressed .npz, RUN_FILE: `saved` (what
    config.json holds: preset, settings, config) and `metrics` as JSON in the member
    "meta"; the history as one structured array, a field per key ("history"; a key
    missing from some evaluations, as a loss where no update happened since the last one,
    also has a field in the mask "history_present"); the curves ("curves/NAME"), an evenly
    spaced grid as its ends and length ("linspace/NAME"). Lossless: unpack_run gives back equal values of the same
    types. The same content always gives the same bytes (no time stamps in the archive)."""
    if not history:
        raise ValueError("a run's history holds at least one evaluation")
    keys = list(dict.fromkeys(k for record in sorted(history, key=len, reverse=True) for k in record))
    if any([k for k in keys if k in record] != list(record) for record in history):
        raise ValueError("the history's records hold their keys in different orders")
    fill = {k: next(r[k] for r in history if k in r) for k in keys}  # where a record lacks k (masked)
    columns = {k: _column([record.get(k, fill[k]) for record in history], k) for k in keys}
    arrays = {"history": _records(columns)}
    partial = {k: np.array([k in record for record in history]) for k in keys}
    partial = {k: present for k, present in partial.items() if not present.all()}
    if partial:
        arrays["history_present"] = _records(partial)
    for name, a in curves.items():
        a = np.asarray(a)
        if a.ndim == 1 and a.size > 2 and np.array_equal(np.linspace(a[0], a[-1], a.size), a):
            arrays[f"linspace/{name}"] = np.array([a[0], a[-1], a.size], dtype=np.float64)
        else:
            arrays[f"curves/{name}"] = _smallest(a)
    meta = {"format": RUN_FORMAT, **saved, "metrics": metrics}
    arrays["meta"] = np.array(json.dumps(meta, separators=(",", ":")))
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, a in arrays.items():
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            with zf.open(info, "w") as fh:
                np.lib.format.write_array(fh, a, allow_pickle=False)
    return buf.getvalue()


def archive_member(path):
    """(ARCHIVE, MEMBER) where `path` names a member of a zip file, spelled ARCHIVE.zip/MEMBER
    as Python's zipimport spells it (a report's copy: OUT/runs.zip/PRESET/NAME.npz); None
    for any other path."""
    parts = path.split(os.sep)   # as given: the system resolves each prefix (a link, then ..)
    for i in range(1, len(parts)):
        head = os.sep.join(parts[:i])
        if head.endswith(".zip") and os.path.isfile(head):
            return head, "/".join(p for p in parts[i:] if p not in ("", "."))
    return None


ARCHIVE_MEMBER = re.compile(r"[^/\\]+/[^/\\]+\.npz")   # PRESET/NAME.npz


def archive_names(archive):
    """The members of a report's archive (RUNS_ARCHIVE), in order. A ValueError where the
    file is not one: a member not named PRESET/NAME.npz, a name twice, or a first member
    that is not at the file's first byte (a run file is a zip too, so an archive cut short
    opens as the last run file inside it)."""
    with zipfile.ZipFile(archive) as zf:
        infos = zf.infolist()
    names = [info.filename for info in infos]
    odd = [n for n in names if not ARCHIVE_MEMBER.fullmatch(n)]
    if odd or (infos and infos[0].header_offset != 0):
        raise ValueError(f"not a report's archive of runs ({'a member ' + repr(odd[0]) if odd else 'cut short'})")
    if len(set(names)) != len(names):
        raise ValueError(f"not a report's archive of runs (two members named {sorted(n for n in names if names.count(n) > 1)[0]!r})")
    return names


def read_archive(archive):
    """{member: bytes} of a report's archive (archive_names), every member read whole
    (which checks its CRC)."""
    names = archive_names(archive)
    with zipfile.ZipFile(archive) as zf:
        return {name: zf.read(name) for name in names}


def pack_archive(members):
    """{member: bytes} → a zip file's bytes holding them as they are (a run file is
    compressed already) in the given order, byte-stable: the same members, the same bytes."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as zf:
        for name, content in members.items():
            zf.writestr(zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0)), content)
    return buf.getvalue()


def unpack_run(path):
    """A RUN_FILE → (saved, metrics, history, curves): saved {preset, settings, config} as
    config.json holds them, metrics the dict, history the list of evaluation records,
    curves NumPy float64 arrays. `path` may be a file object, or a member of a report's
    archive (archive_member). Errors propagate (load_run names the file)."""
    member = None if not isinstance(path, str) or os.path.exists(path) else archive_member(path)
    if member:
        with zipfile.ZipFile(member[0]) as zf:
            path = io.BytesIO(zf.read(member[1]))
    with np.load(path, allow_pickle=False) as z:
        data = {k: z[k] for k in z.files}  # reading every member checks its CRC
    meta = json.loads(str(data.pop("meta")))
    if not isinstance(meta, dict) or meta.get("format") != RUN_FORMAT:
        raise ValueError(f"not a run file of format {RUN_FORMAT}")
    saved = {k: meta[k] for k in ("preset", "settings", "config")}
    table, present = data["history"], data.get("history_present")
    history = [{} for _ in range(len(table))]
    for k in table.dtype.names:
        mask = present[k] if present is not None and k in present.dtype.names else [True] * len(table)
        for record, value, there in zip(history, table[k].tolist(), mask):
            if there:
                record[k] = value
    curves = {}
    for name, a in data.items():
        kind, _, key = name.partition("/")
        if kind == "curves":
            curves[key] = a.astype(np.float64)
        elif kind == "linspace":
            curves[key] = np.linspace(a[0], a[1], int(a[2]))
    return saved, meta["metrics"], history, curves


def _read_old_run(path):
    """A run directory of the four files runs had before RUN_FILE → unpack_run's tuple;
    an unreadable file is a ValueError naming it."""
    parts = []
    for f in OLD_RUN_FILES:
        try:
            if f.endswith(".npz"):
                with np.load(os.path.join(path, f), allow_pickle=False) as z:
                    parts.append({k: z[k] for k in z.files})
            else:
                with open(os.path.join(path, f)) as fh:
                    parts.append(json.load(fh))
        except Exception as exc:  # noqa: BLE001 — JSON, zip and npy errors alike
            raise ValueError(f"{f}: {one_line(exc)}") from None
    return tuple(parts)


def finished(run_dir):
    """Whether a run directory holds a finished run (its RUN_FILE, or the files of old)."""
    return (os.path.isfile(os.path.join(run_dir, RUN_FILE))
            or os.path.isfile(os.path.join(run_dir, "metrics.json")))


def _require(mapping, keys):
    if not isinstance(mapping, dict):
        raise TypeError(f"expected a mapping, got {type(mapping).__name__}")
    missing = [k for k in keys if k not in mapping]
    if missing:
        raise KeyError(f"no {missing[0]!r}")


def _require_each(records, keys):
    """A non-empty list of evaluation records, each with `keys`."""
    if not isinstance(records, list) or not records:
        raise ValueError("expected a non-empty list of evaluations")
    for record in records:
        _require(record, keys)


def load_run(path, presets, config_class, metrics_keys=()):
    """A finished run → dict(path, preset, settings, config, label, metrics, history,
    curves, saved). `path` is a run's file (a report's copy, OUT/runs.zip/PRESET/NAME.npz,
    or an older report's OUT/runs/PRESET/NAME.npz), a run directory holding one (RUN_FILE),
    or a run directory of the four files of old. A run without what report reads is
    refused in one line naming the file."""
    if os.path.isdir(path) and not os.path.exists(os.path.join(path, RUN_FILE)):
        old = [f for f in OLD_RUN_FILES if not os.path.exists(os.path.join(path, f))]
        if old:
            why = f"has no {RUN_FILE}" + ("" if len(old) == len(OLD_RUN_FILES) else f", nor the old {old[0]}")
            raise UsageError(f"{path} is not a finished run ({why})")
        where, read, parts = path, _read_old_run, OLD_RUN_FILES
    else:
        where = os.path.join(path, RUN_FILE) if os.path.isdir(path) else path
        member = None if os.path.exists(where) else archive_member(where)
        if member:
            try:
                names = archive_names(member[0])
            except Exception as exc:  # noqa: BLE001 — zip and format errors alike
                raise UsageError(f"{member[0]} is unreadable ({one_line(exc)})") from None
            if member[1] not in names:
                raise UsageError(f"{path} is not a finished run ({member[0]} holds no {member[1]})")
        elif not os.path.isfile(where):
            raise UsageError(f"{path} is not a finished run (it does not exist)")
        elif os.path.basename(where) == RUNS_ARCHIVE:
            raise UsageError(f"{path} is a report's runs, not one run: give the report's folder, "
                             f"or one run as {path}/PRESET/NAME.npz")
        read, parts = unpack_run, ("its config", "its metrics", "its history", "its curves")
    try:
        saved, metrics, history, curves = read(where)
    except Exception as exc:  # noqa: BLE001 — zip, npy, JSON and key errors alike
        raise UsageError(f"{where} is unreadable ({one_line(exc)})") from None
    checks = [(_require, saved, ("preset", "config")), (_require, metrics, RUN_KEYS["metrics"] + tuple(metrics_keys)),
              (_require_each, history, RUN_KEYS["history"]), (_require, curves, RUN_KEYS["curves"])]
    for part, (check, value, keys) in zip(parts, checks):
        try:
            check(value, keys)
        except (ValueError, TypeError, KeyError) as exc:
            raise UsageError(f"{where} is incomplete ({part}: {one_line(exc)})") from None
    if saved["preset"] not in presets:
        raise UsageError(f"{where} names no preset of this version ({saved['preset']!r}; "
                         f"expected one of {', '.join(presets)})")
    try:
        cfg = config_class(**saved["config"])
    except ValueError as exc:
        raise UsageError(f"{where} holds settings this version refuses: {exc}") from None
    except (TypeError, AttributeError) as exc:
        raise UsageError(f"{where} is unreadable or incomplete ({one_line(exc)})") from None
    saved = {"preset": saved["preset"], "settings": saved.get("settings", {}), "config": saved["config"]}
    return {"path": path, "preset": saved["preset"], "settings": saved["settings"], "config": cfg,
            "label": metrics["label"], "metrics": metrics, "history": history, "curves": curves,
            "saved": saved}


def copy_name(run):
    """The member PRESET/NAME.npz a report keeps a loaded run (load_run) as, NAME the run's
    directory or file name."""
    path = os.path.realpath(run["path"])
    if os.path.basename(path) == RUN_FILE:  # DIR/run.npz: the run is DIR
        path = os.path.dirname(path)
    name = os.path.basename(path)
    name = name[:-len(".npz")] if name.endswith(".npz") else name
    return f"{run['preset']}/{name}.npz"


def run_copies(runs):
    """Each run as the report keeps it, {PRESET/NAME.npz: bytes} (pack_run, made now: the
    runs may be the copies an old report holds, which the new one rewrites), NAME the run's
    directory or file name: the members of the report's RUNS_ARCHIVE, from which its runs
    can be reported again without their checkpoints."""
    copies, origin = {}, {}
    for r in runs:
        member = copy_name(r)
        if member in copies:
            raise UsageError(f"two runs would be kept as {RUNS_ARCHIVE}/{member} ({origin[member]} and "
                             f"{r['path']}): report them separately")
        copies[member] = pack_run(r["saved"], r["metrics"], r["history"], r["curves"])
        origin[member] = r["path"]
    return copies


def _older_copy(name):
    """The member PRESET/NAME.npz that a file an older version's report listed is part of:
    runs/P/NAME.npz, or one of the four files of runs/P/NAME/; None for any other name."""
    parts = name.split(os.sep)
    if len(parts) == 3 and parts[0] == "runs" and parts[2].endswith(".npz"):
        return f"{parts[1]}/{parts[2]}"
    if len(parts) == 4 and parts[0] == "runs" and parts[3] in OLD_RUN_FILES:
        return f"{parts[1]}/{parts[2]}.npz"
    return None


def _earlier_copies(out, listed, config_class):
    """The copies of runs the report already in `out` keeps (its `listed` files), as
    {PRESET/NAME.npz: (where, what)}: where the path a message names, what the copy's bytes
    (a member of its RUNS_ARCHIVE) or path (an older version's runs/P/NAME.npz, or
    runs/P/NAME/ of four files). Refused in one line: an archive that cannot be read, a
    folder of four files holding others (a run directory itself, whose files are not the
    report's to remove), and an older copy of another run than the archive's of that name
    (both listed where a report stopped while removing the older ones)."""
    found, archive = {}, os.path.join(out, RUNS_ARCHIVE)
    if RUNS_ARCHIVE in listed and os.path.isfile(archive):
        try:
            members = read_archive(archive)
        except Exception as exc:  # noqa: BLE001 — zip and format errors alike
            raise UsageError(f"{archive} is unreadable ({one_line(exc)}): report to another --out") from None
        found = {m: (f"{archive}/{m}", content) for m, content in members.items()}
    for f in sorted(listed):
        member = _older_copy(f)
        if member is None:
            continue
        where = os.path.join(out, *f.split(os.sep)[:3])
        foreign = sorted(set(os.listdir(where)) - set(OLD_RUN_FILES)) if os.path.isdir(where) else []
        if foreign:
            raise UsageError(f"{where} holds files no report wrote ({foreign[0]}): report to another --out")
        if os.path.exists(where) and member not in found:
            found[member] = (where, where)
        elif (where != found[member][0] and _whole(where)    # not one half removed by a stopped report
              and not _same_run(where, found[member][1], config_class)):
            raise UsageError(f"{where} holds another run than {found[member][0]}: report to another --out")
    return found


def _whole(copy):
    """Whether an older version's copy is all there: its one file, or all four files."""
    return os.path.isfile(copy) or all(os.path.isfile(os.path.join(copy, f)) for f in OLD_RUN_FILES)


def _stopped_half_way(archive, copies):
    """Whether an archive that no summary.json lists holds only copies this report keeps,
    byte for byte: this report's (or one of fewer of its runs), stopped before its summary."""
    try:
        return all(copies.get(m) == content for m, content in read_archive(archive).items())
    except Exception:  # noqa: BLE001 — not readable: not this report's
        return False


def _holds(path, content):
    """Whether the file at `path` holds exactly `content`."""
    with open(path, "rb") as fh:
        return fh.read() == content


def _same_run(copy, content, config_class):
    """Whether `copy` (a run file's bytes, its path, or a folder of the four files of old)
    is of the run packed in `content`: the same bytes, or a run made with the same preset,
    --set fields and Config (config_class, mfcg.Config, which fills in fields an older
    version did not have): the same run made again, say by `make reproduce` on another
    machine, whose numbers differ only as its CPU rounds. Unreadable: not the same."""
    try:
        if isinstance(copy, bytes) or os.path.isfile(copy):
            if (copy == content) if isinstance(copy, bytes) else _holds(copy, content):
                return True
            theirs = unpack_run(io.BytesIO(copy) if isinstance(copy, bytes) else copy)[0]
        else:
            theirs = _read_old_run(copy)[0]
        mine = unpack_run(io.BytesIO(content))[0]
        return (theirs["preset"] == mine["preset"] and theirs.get("settings", {}) == mine["settings"]
                and config_class(**theirs["config"]) == config_class(**mine["config"]))
    except Exception:  # noqa: BLE001 — a damaged copy is another run's, as far as we can tell
        return False


def write_report_dir(out, copies, outputs, summary, config_class):
    """Write a report into `out`, all of it made before anything is written: the runs'
    copies ({PRESET/NAME.npz: bytes}) as one file, RUNS_ARCHIVE, then `outputs` (RESULTS.md
    and the figures, {name: bytes}), then summary.json (`summary` with the list of files
    and of the copies, OUT/runs.zip/PRESET/NAME.npz, which load_run reads), each file
    written whole and renamed into place. An earlier report in `out` (its summary.json lists
    its files) is replaced whole: its figures that this one does not draw are removed, and
    its copies of these runs, in its archive or (from an older version) as runs/P/NAME.npz
    or four files in runs/P/NAME/, are replaced by theirs; an older version's files go after
    the archive is written, listed by summary.json until they are gone, so a report stopped
    at any point loses no run and the next one finishes the removal.
    Refused before anything changes, with one line: an earlier copy of another run under a
    name this report keeps (a copy may be the only record of its run: it is replaced only
    by a run made with the same settings), an earlier report's copy of a run this one leaves
    out, a report's file name (the archive, RESULTS.md, summary.json, a figure) that no
    earlier report wrote (but an archive holding only this report's copies, byte for byte,
    is its own, stopped half-way), a file name that is not a file, and a path reached
    through a symbolic link. Files a report does not write are never touched.
    config_class (mfcg.Config) reads the runs' settings. Returns the names written."""
    check_out_folder(out)
    listed = {os.path.normpath(f) for f in report_files(out) if _stays_inside(out, f)}
    archive = os.path.join(out, RUNS_ARCHIVE)
    if (RUNS_ARCHIVE not in listed and _stays_inside(out, RUNS_ARCHIVE) and os.path.isfile(archive)
            and _stopped_half_way(archive, copies)):
        listed.add(RUNS_ARCHIVE)
    earlier = _earlier_copies(out, listed, config_class)
    dropped = sorted(m for m in earlier if m not in copies)
    if dropped:
        raise UsageError(f"{out} holds an earlier report's copy of a run this one leaves out "
                         f"({earlier[dropped[0]][0]}): report it too, or report to another --out")
    for member, content in copies.items():
        if member in earlier and not _same_run(earlier[member][1], content, config_class):
            raise UsageError(f"{earlier[member][0]} holds a run made with other settings than the one this "
                             f"report keeps there: report to another --out")
    outputs = {RUNS_ARCHIVE: pack_archive(copies), **outputs}
    names = sorted(outputs)
    summary = {**summary, "copies": [f"{RUNS_ARCHIVE}/{m}" for m in copies], "files": names}
    outputs["summary.json"] = json.dumps(summary, indent=1).encode()
    for name, content in outputs.items():  # an earlier report's, or this one's own, stopped half-way
        path = os.path.join(out, name)
        if not _stays_inside(out, name):
            raise UsageError(f"{path} is reached through a symbolic link: report to another --out")
        if os.path.exists(path) and not os.path.isfile(path):
            raise UsageError(f"{path} is not a file: report to another --out")
        _refuse_what_no_report_wrote(out, name, listed, content)
    older = sorted(f for f in listed if _older_copy(f))    # an older version's copies, now in the archive
    stale = sorted(f for f in listed - set(outputs) if os.sep not in f and f.endswith(".png"))
    os.makedirs(out, exist_ok=True)
    final = outputs.pop("summary.json")
    if older or stale:   # listed until they are gone: a report stopped while removing them removes the rest
        outputs["summary.json"] = json.dumps({**summary, "files": names + older + stale}, indent=1).encode()
    for name, content in outputs.items():   # summary.json last: it lists the rest
        write_atomically(os.path.join(out, name), lambda fh, content=content: fh.write(content))
    for path in (os.path.join(out, f) for f in older + stale):
        if os.path.isfile(path):
            os.remove(path)
    for path in sorted({os.path.dirname(os.path.join(out, f)) for f in older}, key=len, reverse=True):
        while os.path.normpath(path) != os.path.normpath(out):   # runs/P/NAME, runs/P, runs: emptied above
            with contextlib.suppress(OSError):
                os.rmdir(path)
            path = os.path.dirname(path)
    write_atomically(os.path.join(out, "summary.json"), lambda fh: fh.write(final))
    return names


def report_files(out):
    """The files a report already in `out` lists in its summary.json ([] if none; a
    summary.json from before it listed them: its figures, and its RESULTS.md where the
    summary is a report's, one with "algorithms")."""
    old = os.path.join(out, "summary.json")
    if not os.path.exists(old):
        return []
    try:
        with open(old) as fh:
            summary = json.load(fh)
        listed = summary.get("files")
    except (OSError, ValueError, AttributeError):
        summary, listed = None, None
    if not isinstance(listed, list):  # a summary.json without its list of files: its figures
        listed = [f for f in os.listdir(out) if f.endswith(".png")
                  and f.startswith(("distributions_", "control_", "learning_curves_"))]
        if isinstance(summary, dict) and "algorithms" in summary:  # an old report's
            listed.append("RESULTS.md")
    return [f for f in listed if isinstance(f, str)]


RUN_MARKS = (RUN_FILE, "checkpoint.npz", "config.json")   # what `run` writes into its directory


def check_out_folder(out):
    """Refuses, in one line, an --out that is a file or a run's directory (a report, a bench
    or a trace written there would mix with the run's files)."""
    if os.path.exists(out) and not os.path.isdir(out):
        raise UsageError(f"--out {out} is a file, not a directory")
    held = [name for name in RUN_MARKS if os.path.isfile(os.path.join(out, name))]
    if held:
        raise UsageError(f"--out {out} holds a run ({held[0]}): choose another --out")


def check_replace(folder, names, replace):
    """Refuses, in one line, to write a measurement (bench, trace, scaling) over an earlier
    one: one of `names` already in `folder`, unless `replace` (their --replace) asks for it."""
    held = [name for name in names if os.path.exists(os.path.join(folder, name))]
    if held and not replace:
        raise UsageError(f"{os.path.join(folder, held[0])} holds an earlier result: pass --replace to "
                         f"write over it, or choose another --out")


def check_report_out(out):
    """Refuses, in one line, an --out that a report could not be written into whatever its
    runs: a file, or a folder whose RESULTS.md or summary.json no report wrote. `reproduce`
    asks before its first run starts, not hours later; write_report_dir checks the rest."""
    check_out_folder(out)
    listed = set(report_files(out))
    for name in ("RESULTS.md", "summary.json"):
        _refuse_what_no_report_wrote(out, name, listed)


def _refuse_what_no_report_wrote(out, name, listed, content=None):
    """Refuses out/name if it exists and the report in `out` (its `listed` files) did not
    write it; a summary.json is the report's own where it lists files. With `content`, a
    file that holds exactly that (this report's own, stopped half-way) is let through."""
    path = os.path.join(out, name)
    if (os.path.exists(path) and name not in listed and not (name == "summary.json" and listed)
            and (content is None or not _holds(path, content))):
        raise UsageError(f"{path} was not written by a report: report to another --out")


def _stays_inside(out, name):
    """A name is written or removed only if it is a relative path that stays inside `out`
    without passing through a symbolic link."""
    norm = os.path.normpath(name)
    if os.path.isabs(norm) or norm == os.pardir or norm.startswith(os.pardir + os.sep):
        return False
    return os.path.realpath(os.path.join(out, norm)) == os.path.join(os.path.realpath(out), norm)


def run_dir_status(out, resume, made_otherwise):
    """What `run` does with its (claimed) directory `out`: "new" (empty: start the run),
    "restart" (it never reached its first checkpoint: start again from step 0), "resume"
    (with --resume: continue from checkpoint.npz) or "finished" (with --resume: nothing to
    do). Anything else is refused in one line, for results are never overwritten; so is a
    finished or never-started run that made_otherwise() says was made with other settings."""
    files = set(os.listdir(out)) - {LOCK_FILE}
    if finished(out):
        if not resume:
            raise UsageError(f"{out} holds a finished run (results are never overwritten): choose another --out")
        differs = made_otherwise()
        if differs:
            raise UsageError(f"--resume: {out} was made with different settings ({differs})")
        return "finished"
    if "config.json" in files and files <= NEVER_STARTED:  # died before its first checkpoint
        differs = made_otherwise()
        if differs:
            raise UsageError(f"{out} holds a run that never started, made with different settings "
                             f"({differs}): choose another --out")
        return "restart"
    if resume:
        if "checkpoint.npz" not in files:
            raise UsageError(f"--resume: {out} has no checkpoint.npz to resume")
        return "resume"
    if "checkpoint.npz" in files:
        raise UsageError(f"{out} holds a run stopped part-way: pass --resume to continue "
                         f"it, or choose another --out (results are never overwritten)")
    if files:
        raise UsageError(f"{out} already exists, is not empty and holds no run: choose another --out")
    return "new"


STOP_GRACE_SECONDS = 120  # how long an interrupted run_processes waits for a run to checkpoint


def _terminated(signum, frame):
    raise KeyboardInterrupt("terminated (SIGTERM)")


def run_processes(jobs, n_parallel, tag):
    """Run each (out, command) of `jobs` as a process of its own, n_parallel at a time, in
    order, with its output appended to out + ".log"; one line on stderr as each starts and
    ends, the latter with the run's own time and the time since the first began. Returns the
    `out` of those that failed. Each process gets one thread for its
    arithmetic (OMP/OpenBLAS/MKL), so n processes use n cores. Ctrl-C or SIGTERM passes
    exactly one interrupt to each running process (each in a session of its own, so the
    terminal's Ctrl-C reaches only this one), starts no other, waits up to
    STOP_GRACE_SECONDS for each to checkpoint and stop, then raises KeyboardInterrupt."""
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1")
    lock, running, stopping, t0 = threading.Lock(), [], threading.Event(), time.time()

    def run_one(out, cmd):
        os.makedirs(os.path.dirname(out) or ".", exist_ok=True)
        with open(f"{out}.log", "a") as log:
            with lock:  # no new process once the interrupt has been passed on
                if stopping.is_set():
                    return None
                print(f"{tag}: start {out}", file=sys.stderr, flush=True)
                proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env,
                                        start_new_session=True)
                running.append(proc)
                started = time.time()
            return proc.wait(), time.time() - started

    failed = []
    pool = ThreadPoolExecutor(max_workers=n_parallel)
    previous = signal.signal(signal.SIGTERM, _terminated)
    try:
        futures = {pool.submit(run_one, out, cmd): out for out, cmd in jobs}
        for future in as_completed(futures):
            out, (code, seconds) = futures[future], future.result()
            print(f"{tag}: {'done' if code == 0 else f'FAILED (exit {code})'} {out} "
                  f"[{seconds:.0f}s, {time.time() - t0:.0f}s since {tag} began]",
                  file=sys.stderr, flush=True)
            if code != 0:
                failed.append(out)
    except KeyboardInterrupt as exc:
        with lock:
            stopping.set()
            started = [p for p in running if p.poll() is None]
        for proc in started:
            proc.send_signal(signal.SIGINT)
        for proc in started:
            try:
                proc.wait(timeout=STOP_GRACE_SECONDS)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        raise KeyboardInterrupt(f"{tag} {str(exc) or 'interrupted'}: {len(started)} running run(s) "
                                f"checkpointed and stopped; the same command continues them") from None
    finally:
        signal.signal(signal.SIGTERM, previous)
        pool.shutdown(wait=False, cancel_futures=True)
    return failed


class Progress:
    """A line on stderr every `every` seconds: step/total, steps/s, ETA, and what
    `describe(record)` says of the latest evaluation record (once there is one)."""

    def __init__(self, tag, total, describe, every=5.0):
        self.tag, self.total, self.describe, self.every = tag, total, describe, every
        self.t_last = time.perf_counter()
        self.step_last = None

    def __call__(self, state):
        now = time.perf_counter()
        if self.step_last is None:
            self.step_last = state["step"] - 1
        if now - self.t_last < self.every and state["step"] < self.total:
            return
        rate = (state["step"] - self.step_last) / max(now - self.t_last, 1e-9)
        eta = (self.total - state["step"]) / rate if rate > 0 else math.inf
        errs = self.describe(state["history"][-1]) if state["history"] else ""
        print(f"[{self.tag}] step {state['step']}/{self.total}  {rate:.1f} steps/s  "
              f"ETA {eta:.0f}s  {errs}", file=sys.stderr, flush=True)
        self.t_last, self.step_last = now, state["step"]


def keep_freed_memory():
    """Ask glibc to keep freed large buffers for reuse instead of returning them to the OS.

    By default every array above ~128 KiB is a fresh mmap whose pages fault in on first
    touch; a training step allocates many 4 MiB temporaries at the paper's sizes
    (docs/performance.md, for what it gains). Only the command line does this;
    importing mfcg changes nothing. No effect (and no error) where glibc is absent."""
    try:
        import ctypes
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return
    M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
    libc.mallopt(M_MMAP_THRESHOLD, 1 << 30)
    libc.mallopt(M_TRIM_THRESHOLD, 1 << 30)
