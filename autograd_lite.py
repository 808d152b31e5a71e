"""autograd_lite: the small toolbox the networks of mfcg are built from.

No autodiff library is used anywhere in this project. Each primitive below has its
forward pass directly above its backward pass, with the derivative in the docstring,
and every backward pass is checked against float64 central differences in tests/.

Contents
    backend      get_xp(), to_numpy(), DEFAULT_DTYPE
    primitives   affine, tanh, softplus, Gaussian log-density, Gaussian entropy
    optimiser    adam_init / adam_update (bias-corrected Adam, state in plain arrays),
                 clip_grad_norm
    utilities    lr_factor (the paper's schedule), numerical_grad
The same Adam and clipping as one fused update on a flat buffer, the random streams of
the GPU and the CUDA kernels are in fastpaths.py.
"""
import math
import os
import sys

import numpy as np

# ---------------------------------------------------------------------------------------
# Backend: chosen once, on first use. The only global state in the project.
# ---------------------------------------------------------------------------------------

DEFAULT_DTYPE = np.float32  # training dtype; float64 is selected per call (tests, checks)
_XP = None


def get_xp():
    """Return the array module: CuPy when it imports and sees a GPU, else NumPy.

    MFCG_BACKEND=numpy forces NumPy; MFCG_BACKEND=cupy requires CuPy (error if absent).
    """
    global _XP
    if _XP is None:
        choice = os.environ.get("MFCG_BACKEND", "auto").lower()
        if choice not in ("auto", "numpy", "cupy"):
            raise ValueError(f"MFCG_BACKEND must be 'auto', 'numpy' or 'cupy', got {choice!r}")
        _XP = np
        if choice != "numpy":
            try:
                import cupy
                if cupy.cuda.runtime.getDeviceCount() > 0:
                    _XP = cupy
            except Exception as exc:  # no CuPy, no driver, or no device
                if choice == "cupy":
                    raise RuntimeError(f"MFCG_BACKEND=cupy but CuPy/GPU unavailable: {exc}") from exc
            if choice == "cupy" and _XP is np:
                raise RuntimeError("MFCG_BACKEND=cupy but CuPy sees no GPU")
    return _XP


def backend_name():
    """'numpy' or 'cupy': the name of the module get_xp() returns."""
    return get_xp().__name__


def xp_of(*arrays):
    """The array module (numpy or cupy) that owns these arrays; NumPy for NumPy/scalars."""
    for a in arrays:
        if type(a).__module__.split(".")[0] == "cupy":
            return sys.modules["cupy"]
    return np


def to_numpy(a):
    """Convert an array of either backend (or a scalar) to a NumPy array."""
    if hasattr(a, "get"):  # cupy.ndarray
        return a.get()
    return np.asarray(a)


# ---------------------------------------------------------------------------------------
# Shape checks: one line each, naming the argument and what it got.
# ---------------------------------------------------------------------------------------

def check_array(name, a, ndim, shape=None):
    """Raise ValueError unless `a` is a floating array with `ndim` dims matching `shape`.

    `shape` may contain None for a free axis, e.g. check_array("x", x, 2, (None, 3)).
    """
    if not hasattr(a, "shape") or not hasattr(a, "dtype"):
        raise ValueError(f"{name} must be an array, got {type(a).__name__}")
    if a.ndim != ndim or (shape is not None and any(
            want is not None and got != want for got, want in zip(a.shape, shape))):
        if shape is None:
            raise ValueError(f"{name} must be {ndim}-d, got shape {tuple(a.shape)}")
        want = ", ".join("N" if s is None else str(s) for s in shape)
        want = f"({want},)" if len(shape) == 1 else f"({want})"
        raise ValueError(f"{name} must have shape {want}, got {tuple(a.shape)}")
    if a.dtype.kind != "f":
        raise ValueError(f"{name} must be a floating array, got dtype {a.dtype}")


# ---------------------------------------------------------------------------------------
# Primitives. Shapes: N batch, I inputs, O outputs, K action dimensions.
# ---------------------------------------------------------------------------------------

def matmul(a, b):
    """a @ b for a (N, K), b (K, M). With K = 1 (one-dimensional states) this is an outer
    product, computed as the broadcast a · b[0]: the same numbers (one product per entry,
    nothing to accumulate) at about a third of the cost of NumPy's (N,1)@(1,M) matmul."""
    if a.shape[-1] == 1:
        return a * b[0]
    return a @ b


def affine_forward(x, W, b):
    """z = x W + b.   x (N, I), W (I, O), b (O,)  ->  z (N, O)."""
    return matmul(x, W) + b


def sum_rows(a):
    """Σₙ a[n] for a (N, O) → (O,). On NumPy a.sum(axis=0). On CuPy the product 1ᵀa with a
    vector of ones: cuBLAS does this faster than CuPy's reduction over the batch axis
    (docs/gpu.md)."""
    xp = xp_of(a)
    if xp is np:
        return a.sum(axis=0)
    key = (a.shape[0], a.dtype.str)
    if key not in _ONES:
        _ONES[key] = xp.ones(a.shape[0], dtype=a.dtype)
    return _ONES[key] @ a


_ONES = {}  # CuPy vectors of ones for sum_rows, one per (N, dtype)


def affine_backward(dout, x, W):
    """dx = dout Wᵀ, dW = xᵀ dout, db = Σₙ dout.   dout (N, O) -> (N, I), (I, O), (O,)."""
    return matmul(dout, W.T), x.T @ dout, sum_rows(dout)


def tanh_forward(z):
    """a = tanh(z), elementwise."""
    xp = xp_of(z)
    return xp.tanh(z)


def tanh_backward(dout, a):
    """dz = dout (1 − a²), using the forward output a = tanh(z)."""
    return dout * (1.0 - a * a)


def softplus_forward(z):
    """y = log(1 + eᶻ), computed stably as max(z, 0) + log1p(e^{−|z|})."""
    xp = xp_of(z)
    return xp.maximum(z, 0) + xp.log1p(xp.exp(-xp.abs(z)))


def softplus_backward(dout, z):
    """dz = dout σ(z), σ the logistic function (the derivative of softplus)."""
    xp = xp_of(z)
    e = xp.exp(-xp.abs(z))  # in (0, 1]: no overflow, and no cancellation for z ≪ 0
    return dout * xp.where(z >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


LOG_2PI = math.log(2.0 * math.pi)


def gaussian_logprob_forward(a, mean, std):
    """log N(a; mean, diag(std²)), summed over the K action dimensions.

    a, mean, std (N, K) -> (N,):  Σₖ [ −½((aₖ − μₖ)/σₖ)² − log σₖ − ½ log 2π ].
    """
    u = (a - mean) / std
    xp = xp_of(a)
    return (-0.5 * u * u - xp.log(std)).sum(axis=1) - 0.5 * LOG_2PI * a.shape[1]


def gaussian_logprob_backward(dout, a, mean, std):
    """dμ = dout (a − μ)/σ²,  dσ = dout ((a − μ)²/σ³ − 1/σ).   dout (N,) -> (N, K), (N, K)."""
    u = (a - mean) / std
    g = dout[:, None]
    return g * u / std, g * (u * u - 1.0) / std


def gaussian_entropy_forward(std):
    """Entropy of N(μ, diag(σ²)): Σₖ [½ log(2πe) + log σₖ].   std (N, K) -> (N,)."""
    xp = xp_of(std)
    return xp.log(std).sum(axis=1) + 0.5 * (LOG_2PI + 1.0) * std.shape[1]


def gaussian_entropy_backward(dout, std):
    """dσ = dout / σ.   dout (N,) -> (N, K)."""
    return dout[:, None] / std


# ---------------------------------------------------------------------------------------
# Adam, written out. State is a plain dict of arrays so a checkpoint restores it exactly.
# ---------------------------------------------------------------------------------------

def adam_init(params):
    """Zero first and second moments for every parameter, and the step count t = 0. For a
    fastpaths.FlatParams the moments are flat arrays in the layout of its buffer
    `params.flat` (see fastpaths.adam_step)."""
    xp = xp_of(*params.values())
    if hasattr(params, "flat"):
        return {"t": 0, "m": xp.zeros_like(params.flat), "v": xp.zeros_like(params.flat)}
    return {"t": 0,
            "m": {k: xp.zeros_like(v) for k, v in params.items()},
            "v": {k: xp.zeros_like(v) for k, v in params.items()}}


def adam_update(params, grads, state, lr, beta1=0.9, beta2=0.999, eps=1e-8):
    """One Adam step, in place on `params` and `state` (Kingma & Ba 2015, Algorithm 1).

        t ← t + 1
        m ← β₁ m + (1 − β₁) g          v ← β₂ v + (1 − β₂) g²
        m̂ = m / (1 − β₁ᵗ)              v̂ = v / (1 − β₂ᵗ)
        θ ← θ − lr m̂ / (√v̂ + ε)
    """
    if set(grads) != set(params):
        raise ValueError(f"grads keys {sorted(grads)} do not match params keys {sorted(params)}")
    state["t"] += 1
    t = state["t"]
    c1 = 1.0 - beta1 ** t
    c2 = 1.0 - beta2 ** t
    for k, g in grads.items():
        m, v = state["m"][k], state["v"][k]
        m *= beta1
        m += (1.0 - beta1) * g
        v *= beta2
        v += (1.0 - beta2) * (g * g)
        params[k] -= (lr / c1) * m / ((v / c2) ** 0.5 + eps)


def clip_grad_norm(grads, max_norm):
    """Scale all gradients in place so their global L2 norm is at most max_norm.

    Returns the norm before clipping. When it exceeds max_norm every gradient is
    multiplied by max_norm / norm, so the new global norm equals max_norm exactly.
    Raises ValueError if the norm is not finite (a nan/inf gradient).
    """
    if not max_norm > 0:
        raise ValueError(f"max_norm must be positive, got {max_norm}")
    # squares summed in float64: in float32 a gradient entry of 1e20 would make the norm
    # inf and the scale 0, silently zeroing every gradient
    total = math.sqrt(sum(float((g.astype("float64") ** 2).sum()) for g in grads.values()))
    if not math.isfinite(total):
        raise ValueError(f"clip_grad_norm: the gradient norm is not finite ({total})")
    if total > max_norm:
        scale = max_norm / total
        for g in grads.values():
            g *= scale
    return total


# ---------------------------------------------------------------------------------------
# The paper's learning-rate schedule
# ---------------------------------------------------------------------------------------

def lr_factor(step, total, warmup_frac=0.1, peak=10.0, final=0.25):
    """The paper's learning-rate multiplier at `step` of a run of `total` steps.

    Linear from ×1 at step 0 to ×`peak` at the end of the first `warmup_frac` of the run,
    then linear down to ×`final` at the last step (step = total − 1). Example, total = 11:
    step 0 → 1.0, step 1 → 10.0, step 10 → 0.25.
    """
    if total < 1 or not 0 <= step < total:
        raise ValueError(f"need 0 <= step < total and total >= 1, got step={step}, total={total}")
    if not 0 < warmup_frac < 1:
        raise ValueError(f"warmup_frac must be in (0, 1), got {warmup_frac}")
    if total == 1:  # a one-step run has no schedule: the base rate
        return 1.0
    f = step / (total - 1)  # fraction of the run done, 0 at the first step, 1 at the last
    if f <= warmup_frac:
        return 1.0 + (peak - 1.0) * f / warmup_frac
    return peak + (final - peak) * (f - warmup_frac) / (1.0 - warmup_frac)


# ---------------------------------------------------------------------------------------
# Finite-difference gradient checker (float64), used by the tests.
# ---------------------------------------------------------------------------------------

def numerical_grad(loss_fn, params, h=1e-6):
    """Central differences (L(θ + h) − L(θ − h)) / 2h for every entry of every parameter.

    `loss_fn(params)` returns a scalar; `params` is a dict of float64 NumPy arrays and is
    restored exactly after each probe. Returns a dict keyed like `params`.
    """
    grads = {}
    for k, p in params.items():
        if p.dtype != np.float64:
            raise ValueError(f"numerical_grad needs float64 parameters, {k} is {p.dtype}")
        g = np.zeros_like(p)
        for i in np.ndindex(p.shape):  # index p itself: works for any memory layout
            old = p[i]
            p[i] = old + h
            up = float(loss_fn(params))
            p[i] = old - h
            down = float(loss_fn(params))
            p[i] = old
            g[i] = (up - down) / (2.0 * h)
        grads[k] = g
    return grads
