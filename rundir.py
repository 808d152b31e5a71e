"""rundir: a run's bookkeeping, apart from the algorithm.

Why apart: mfcg.py is the algorithm a student reads; what is here keeps a run safe and
resumable and changes no number it computes:
    settings     check_field_types, check_problem, check_config: every field of an
                 LQProblem or a Config of its type and within its range, or a ValueError
                 naming it
    files        write_atomically, through which the checkpoint and the command line's
                 files are written: a file holds its old content or its new, never a part
    checkpoints  save_checkpoint, load_checkpoint: one .npz that resumes a run bit for bit
    read-outs    density_from_score and readout_range: the quadrature and the grid with
                 which mfcg.evaluate reads a 1-d density off a score network; they report
                 on a run and take no part in training it
    the loop     Loop: the steps' numbers, Ctrl-C, and the checks for non-finite or runaway
                 values before every evaluation and checkpoint; the trainers call evaluate
                 and Loop.checkpoint in sight, at the end of every step
It knows the training state as the plain dict mfcg.init_state makes, but does not import
mfcg (mfcg imports it): what it needs from there (Config, MeanField, LQProblem) is passed in.
"""
import contextlib
import json
import math
import os
import signal
import sys
import threading
import time

import numpy as np

from autograd_lite import get_xp, to_numpy, xp_of
from fastpaths import FlatParams

# ---------------------------------------------------------------------------------------
# Settings: every field of the type its default has, and within its range
# ---------------------------------------------------------------------------------------

def check_field_types(obj):
    """Raise ValueError naming the first field of a dataclass whose value is not of its
    default's type: booleans only from booleans, integers only from integers (not from
    booleans or floats), numbers from integers or floats and finite, strings from strings.
    So mf_correction="False" or seed=1.5 are refused rather than silently misread."""
    for name, f in obj.__dataclass_fields__.items():
        kind, value = type(f.default), getattr(obj, name)
        if kind is bool:
            ok, want = isinstance(value, (bool, np.bool_)), "true or false (a bool)"
        elif kind is int:
            ok = isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))
            want = "an integer"
        elif kind is float:
            ok = (isinstance(value, (int, float, np.integer, np.floating))
                  and not isinstance(value, (bool, np.bool_)) and math.isfinite(value))
            want = "a finite number"
        elif kind is str:
            ok, want = isinstance(value, str), "a string"
        else:
            continue
        if not ok:
            raise ValueError(f"{name} must be {want}, got {value!r}")


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


def check_config(cfg, algos, problem_class):
    """Raise ValueError naming the first field of a Config (mfcg.py) that is of the wrong
    type (check_field_types) or out of its range, or a combination of fields that cannot
    run; `algos` are the algorithms it may name, `problem_class` what its problem must be
    (mfcg.LQProblem)."""
    if not isinstance(cfg.problem, problem_class):
        raise ValueError(f"problem must be an LQProblem, got {type(cfg.problem).__name__}")
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
                 "score_warmup_lr"]:
        if not getattr(cfg, name) > 0:
            raise ValueError(f"{name} must be > 0, got {getattr(cfg, name)!r}")
    for name in ["target_every", "grad_clip", "ent_coef", "score_warmup"]:
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
    if cfg.dtype not in ("float32", "float64"):
        raise ValueError(f"dtype must be 'float32' or 'float64', got {cfg.dtype!r}")
    if cfg.algo == "drl" and cfg.ppo_minibatches > cfg.rollout * cfg.batch:
        raise ValueError(f"ppo_minibatches ({cfg.ppo_minibatches}) must be at most the rollout's "
                         f"rollout × batch = {cfg.rollout * cfg.batch} transitions")
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
        with open(tmp, "wb") as fh:
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
# Read-outs: a density off a score network, for mfcg.evaluate
# ---------------------------------------------------------------------------------------

def density_from_score(score_fn, lo, hi, n=2001):
    """Read a 1-d density off a score function, with no sampler.

    log p(x) = ∫_lo^x s(u) du + const (trapezoid rule on a uniform grid), then exponentiate
    and normalise. Returns a dict: grid (n,), density (n,), mean, std — NumPy, float64.
    This separates the score network's error from the Langevin sampler's bias.
    """
    if not hi > lo or n < 3:
        raise ValueError(f"need hi > lo and n >= 3, got lo={lo}, hi={hi}, n={n}")
    grid = np.linspace(lo, hi, n)
    s = np.asarray(to_numpy(score_fn(grid[:, None])), dtype=np.float64).reshape(n)
    h = grid[1] - grid[0]
    logp = np.concatenate([[0.0], np.cumsum(0.5 * h * (s[1:] + s[:-1]))])
    p = np.exp(logp - logp.max())
    p /= np.trapezoid(p, grid)
    mean = np.trapezoid(grid * p, grid)
    var = np.trapezoid((grid - mean) ** 2 * p, grid)
    return {"grid": grid, "density": p, "mean": float(mean), "std": float(math.sqrt(var))}


def readout_range(sol, *sample_sets, width=10.0):
    """Grid limits for the 1-d density read-out: the limiting law's m* ± width·std, widened
    to cover every sample set's central 99 % plus half its width, so a population far from
    m* is not cut off."""
    lo, hi = sol.mean - width * sol.std, sol.mean + width * sol.std
    for s in sample_sets:
        q_lo, q_hi = np.quantile(s, [0.005, 0.995])  # quantiles: robust to stray chains
        pad = 0.5 * (q_hi - q_lo) + 1e-3
        lo, hi = min(lo, q_lo - pad), max(hi, q_hi + pad)
    return float(lo), float(hi)


# ---------------------------------------------------------------------------------------
# The training loop's bookkeeping, shared by the four trainers
# ---------------------------------------------------------------------------------------

# A state is sane when no parameter, agent state or Langevin sample exceeds this in absolute
# value. The LQ benchmark lives within a few units of the origin (m* = 0.24, std 0.32, the
# largest weight of a hand-built exact actor is about 1,200); a run past 1e6 has diverged
# even if every number is still finite, and no checkpoint is written from it.
SANE_BOUND = 1e6


def _wait_for_device(state):
    """Wait until the GPU has done all the work queued so far (nothing to do on NumPy)."""
    xp = xp_of(state["x"])
    if xp is not np:
        xp.cuda.get_current_stream().synchronize()


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
        if n % cfg.eval_every == 0 or n == cfg.steps or n % cfg.checkpoint_every == 0:
            _wait_for_device(state)  # so the steps' time includes the work they queued
        state["train_seconds"] += time.perf_counter() - self._t0
        state["step"], self._phase = n, "after"
        self._evaluated = n % cfg.eval_every == 0 or n == cfg.steps
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
