"""autograd_lite: the small toolbox the networks of mfcg are built from.

No autodiff library is used anywhere in this project. Each primitive below has its
forward pass directly above its backward pass, with the derivative in the docstring,
and every backward pass is checked against float64 central differences in tests/.

Contents
    backend      get_xp(), to_numpy(), DEFAULT_DTYPE
    primitives   affine, tanh, softplus, Gaussian log-density, Gaussian entropy
    optimiser    adam_init / adam_update (bias-corrected Adam, state in plain arrays),
                 clip_grad_norm: the readable definitions
    flat         FlatParams (a network's arrays as views into one buffer) and adam_step,
                 clipping and Adam in one update on that buffer, with no host round trip
    random       make_rng: a stream keyed by a tuple of ints (PhiloxStream on CuPy)
    utilities    lr_factor (the paper's schedule), numerical_grad
    GPU twins    CUDA sources of the fused kernels, each beside the NumPy code it equals
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
    FlatParams the moments are flat arrays in its buffer's layout (see adam_step)."""
    xp = xp_of(*params.values())
    if isinstance(params, FlatParams):
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
# One flat buffer per network, and the update that works on it
# ---------------------------------------------------------------------------------------

class FlatParams(dict):
    """A network's parameters: the named arrays (W1, b1, ...) as views into one contiguous
    1-d buffer, `self.flat`, in the order given. The hand-derived code reads params["W1"]
    as before; the optimiser updates `flat` in one operation, and every view sees it.
    Assign into a view (params["W1"][...] = v); rebinding a name would detach it."""

    def __init__(self, arrays):
        arrays = dict(arrays)
        xp = xp_of(*arrays.values())
        dtypes = {np.dtype(a.dtype) for a in arrays.values()}
        if len(dtypes) != 1:
            raise ValueError(f"FlatParams needs one dtype, got {sorted(map(str, dtypes))}")
        sizes = [int(np.prod(a.shape)) for a in arrays.values()]
        flat = xp.empty(sum(sizes), dtype=dtypes.pop())
        super().__init__()
        offset = 0
        for (name, a), size in zip(arrays.items(), sizes):
            view = flat[offset:offset + size].reshape(a.shape)
            view[...] = a
            dict.__setitem__(self, name, view)
            offset += size
        self.flat = flat

    def __setitem__(self, name, value):
        raise TypeError(f"FlatParams: assign into the view (params[{name!r}][...] = value)")

    def copy(self):
        return FlatParams(self)

    def pack(self, grads):
        """Gradients keyed like the parameters → one flat array in the buffer's layout."""
        if set(grads) != set(self):
            raise ValueError(f"grads keys {sorted(grads)} do not match params keys {sorted(self)}")
        return xp_of(self.flat).concatenate([grads[k].reshape(-1) for k in self])


def clip_scale(g, max_norm):
    """The factor clip_grad_norm multiplies the flat gradient g by, as a 0-d array on g's
    device (no host round trip): max_norm / ‖g‖ where ‖g‖ > max_norm, else exactly 1.
    A nan gradient gives a nan scale, an infinite one the scale 0 and so inf·0 = nan in its
    entry: either way the parameters turn nan and the next finite check (at an evaluation
    or checkpoint) stops the run, as clip_grad_norm would at once. The squares are summed
    in float64, as in clip_grad_norm, by a reduction kernel (a cuBLAS dot product may
    return its result through the host)."""
    xp = xp_of(g)
    g64 = g.astype(np.float64)
    norm = xp.sqrt((g64 * g64).sum())
    return (max_norm / xp.maximum(norm, max_norm)).astype(g.dtype)


def adam_step(params, grads, state, lr, max_norm=0.0, beta1=0.9, beta2=0.999, eps=1e-8):
    """clip_grad_norm (when max_norm > 0) followed by adam_update, on a FlatParams and an
    Adam state from adam_init(params) (flat moments), without leaving the device.

    The update is `adam_flat` below on the packed gradient: on NumPy its in-place
    expression, on CuPy its fused kernel twin (one launch per network; tests/test_gpu.py)."""
    g = params.pack(grads)
    scale = clip_scale(g, max_norm) if max_norm else xp_of(g).ones((), dtype=g.dtype)
    state["t"] += 1
    t = state["t"]
    adam_flat(params.flat, g, state["m"], state["v"], scale, lr / (1.0 - beta1 ** t),
              beta1, beta2, 1.0 - beta2 ** t, eps)


def adam_flat(p, g, m, v, scale, lr_t, beta1, beta2, c2, eps):
    """In place on the flat arrays p, m, v (g is consumed), with lr_t = lr / (1 − β₁ᵗ) and
    c2 = 1 − β₂ᵗ, the same operations in the same order as adam_update:
        g ← scale·g,  m ← β₁m + (1 − β₁)g,  v ← β₂v + (1 − β₂)g²,  p ← p − lr_t m / (√(v/c2) + ε)
    """
    # plain Python floats: under NumPy's promotion rules a NumPy float64 here would lift the
    # float32 arithmetic to float64 and part the two branches
    lr_t, beta1, beta2, c2, eps = (float(v) for v in (lr_t, beta1, beta2, c2, eps))
    if xp_of(p) is not np:
        if not all(a.dtype == p.dtype and a.flags.c_contiguous for a in (g, m, v)) or scale.dtype != p.dtype:
            raise ValueError(f"adam_flat needs contiguous p, g, m, v and a scale of one dtype, got "
                             f"{[str(a.dtype) for a in (p, g, m, v, scale)]}")
        return _launch_elementwise("adam_flat", p.dtype, p.size,
                                   p, g, m, v, scale, lr_t, beta1, 1.0 - beta1, beta2,
                                   1.0 - beta2, c2, eps)
    g *= scale
    m *= beta1
    m += (1.0 - beta1) * g
    v *= beta2
    v += (1.0 - beta2) * (g * g)
    p -= lr_t * m / (np.sqrt(v / c2) + eps)


# ---------------------------------------------------------------------------------------
# Random streams keyed by tuples of ints: nothing to save, so resuming is exact anywhere
# ---------------------------------------------------------------------------------------
# A run draws its numbers for step n from a stream keyed by (seed, n, purpose): a
# checkpoint at a step boundary holds the whole random state by holding n. On NumPy the
# stream is a Generator seeded by that tuple; on CuPy it is a PhiloxStream, a counter-based
# generator whose every number is a pure function of (key, draw, index), computed by one
# kernel launch per draw with no state on the device. The two backends draw different
# numbers; each is exact on resume.

PHILOX_M = (0xD2511F53, 0xCD9E8D57)   # Philox4x32 multipliers (Salmon et al. 2011)
PHILOX_W = (0x9E3779B9, 0xBB67AE85)   # key increments (golden ratio, √3 − 1)
_U32 = 0xFFFFFFFF


def philox4x32(counter, key, rounds=10):
    """Philox4x32-10 in NumPy, the reference the CUDA twin is tested against.

    counter (4, N) uint32, key (2,) uint32 → (4, N) uint32. One round, with products in
    64 bits: (hi₀, lo₀) = M₀c₀, (hi₁, lo₁) = M₁c₂, c ← (hi₁ ⊕ c₁ ⊕ k₀, lo₁, hi₀ ⊕ c₃ ⊕ k₁, lo₀);
    the key is bumped by W before every round but the first."""
    c = [np.asarray(w, dtype=np.uint64) for w in counter]
    k0, k1 = np.uint64(key[0]), np.uint64(key[1])
    m0, m1, mask = np.uint64(PHILOX_M[0]), np.uint64(PHILOX_M[1]), np.uint64(_U32)
    for r in range(rounds):
        if r:
            k0, k1 = (k0 + np.uint64(PHILOX_W[0])) & mask, (k1 + np.uint64(PHILOX_W[1])) & mask
        p0, p1 = m0 * c[0], m1 * c[2]
        c = [(p1 >> np.uint64(32)) ^ c[1] ^ k0, p1 & mask, (p0 >> np.uint64(32)) ^ c[3] ^ k1, p0 & mask]
    return np.stack(c).astype(np.uint32)


def philox_words(key, draw, n):
    """The first two Philox words for elements 0 … n−1 of draw number `draw`: the counter of
    element i is (i mod 2³², i div 2³², draw, 0). Returns (w0, w1), each (n,) uint32."""
    i = np.arange(n, dtype=np.uint64)
    counter = [i & np.uint64(_U32), i >> np.uint64(32), np.full(n, draw, np.uint64), np.zeros(n, np.uint64)]
    out = philox4x32(counter, key)
    return out[0], out[1]


def box_muller(w0, w1):
    """Standard normals from two uint32 words, in float64: u₁ = (w₀ + 1)/2³² ∈ (0, 1],
    u₂ = w₁/2³², z = √(−2 ln u₁) cos 2πu₂ (|z| ≤ 6.7: u₁ is never 0)."""
    u1 = (w0.astype(np.float64) + 1.0) * 2.0 ** -32
    u2 = w1.astype(np.float64) * 2.0 ** -32
    return np.sqrt(-2.0 * np.log(u1)) * np.cos(2.0 * math.pi * u2)


class PhiloxStream:
    """A CuPy random stream with the methods the trainers use (standard_normal, permutation).
    Draw number d gives element i the numbers philox_words(key, d, ·)[i]; the host counts
    the draws, so nothing on the device changes between calls and no call synchronises."""

    def __init__(self, key):
        self.key = np.asarray(key, dtype=np.uint32).reshape(2)
        self.draws = 0

    def _next(self):
        self.draws += 1
        return self.draws - 1

    def standard_normal(self, size, dtype=np.float64):
        import cupy
        out = cupy.empty(size, dtype=dtype)
        _launch_elementwise("philox_normal", out.dtype, out.size, out,
                            np.uint32(self.key[0]), np.uint32(self.key[1]), np.uint32(self._next()))
        return out

    def permutation(self, n):
        """A random permutation of range(n), drawn on the host by a NumPy Generator keyed by
        (key, draw) and copied to the device. (Sorting random words on the device would
        need Thrust, whose sort waits for the GPU to finish; a copy of n indices does not.)"""
        import cupy
        host = np.random.default_rng([int(self.key[0]), int(self.key[1]), self._next()]).permutation(n)
        return cupy.asarray(host)


def make_rng(seed, xp=None):
    """The random stream keyed by `seed`, an int or a tuple of ints: a NumPy Generator, or
    on CuPy a PhiloxStream whose key is the first two words of that seed's SeedSequence."""
    xp = xp or get_xp()
    if xp is np:
        return np.random.default_rng(seed)
    return PhiloxStream(np.random.SeedSequence(seed).generate_state(2, dtype=np.uint32))


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


# ---------------------------------------------------------------------------------------
# GPU twins: CUDA sources of the fused kernels. Each does what the NumPy code it names
# does; tests/test_gpu.py compares them on a GPU, and tests/test_speed.py compiles every
# source with nvcc (to PTX, no GPU needed) wherever nvcc is installed.
# ---------------------------------------------------------------------------------------

_PHILOX_CUDA = r"""
__device__ __forceinline__ void philox4x32_10(unsigned int c[4], unsigned int k0, unsigned int k1) {
    for (int r = 0; r < 10; ++r) {
        if (r) { k0 += 0x9E3779B9u; k1 += 0xBB67AE85u; }
        const unsigned long long p0 = 0xD2511F53ull * c[0], p1 = 0xCD9E8D57ull * c[2];
        const unsigned int n0 = (unsigned int)(p1 >> 32) ^ c[1] ^ k0, n2 = (unsigned int)(p0 >> 32) ^ c[3] ^ k1;
        c[1] = (unsigned int)p1; c[3] = (unsigned int)p0; c[0] = n0; c[2] = n2;
    }
}
__device__ __forceinline__ void philox_words(long long i, unsigned int k0, unsigned int k1,
                                             unsigned int draw, unsigned int* w0, unsigned int* w1) {
    unsigned int c[4] = {(unsigned int)i, (unsigned int)((unsigned long long)i >> 32), draw, 0u};
    philox4x32_10(c, k0, k1);
    *w0 = c[0]; *w1 = c[1];
}
"""

# philox_normal: box_muller(philox_words(key, draw, n)) cast to T (autograd_lite.py)
# adam_flat: adam_flat's NumPy branch, element by element, in the same order; built with
# --fmad=false so no multiply–add is fused and float32 results equal NumPy's bit for bit
CUDA_SOURCES = {
    "philox_normal": _PHILOX_CUDA + r"""
extern "C" __global__ void philox_normal(const long long n, T* out, const unsigned int k0,
                                         const unsigned int k1, const unsigned int draw) {
    const long long i = (long long)blockDim.x * blockIdx.x + threadIdx.x;
    if (i >= n) return;
    unsigned int w0, w1;
    philox_words(i, k0, k1, draw, &w0, &w1);
    const double u1 = ((double)w0 + 1.0) * 2.3283064365386963e-10;   /* 2^-32 */
    const double u2 = (double)w1 * 2.3283064365386963e-10;
    out[i] = (T)(sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2));
}
""",
    "adam_flat": r"""
extern "C" __global__ void adam_flat(const long long n, T* p, T* g, T* m, T* v, const T* scale,
                                     const T lr_t, const T beta1, const T a1, const T beta2,
                                     const T a2, const T c2, const T eps) {
    const long long i = (long long)blockDim.x * blockIdx.x + threadIdx.x;
    if (i >= n) return;
    const T gi = g[i] * scale[0];
    const T mi = m[i] * beta1 + a1 * gi;
    const T vi = v[i] * beta2 + a2 * (gi * gi);
    m[i] = mi;
    v[i] = vi;
    p[i] = p[i] - lr_t * mi / (sqrt(vi / c2) + eps);
}
""",
}
CUDA_OPTIONS = ("--fmad=false",)
_KERNELS = {}


def cuda_kernel(name, dtype, source=None, defines=()):
    """The compiled CUDA kernel `name` for element type T = dtype (float32 or float64), from
    CUDA_SOURCES[name] or `source`, with extra `#define`s; compiled once and cached."""
    import cupy
    dtype = np.dtype(dtype)
    if dtype not in (np.dtype(np.float32), np.dtype(np.float64)):
        raise ValueError(f"the CUDA kernels take float32 or float64, got {dtype}")
    cache_key = (name, dtype, tuple(defines))
    if cache_key not in _KERNELS:
        ctype = {np.dtype(np.float32): "float", np.dtype(np.float64): "double"}[dtype]
        head = f"#define T {ctype}\n" + "".join(f"#define {k} {v}\n" for k, v in defines)
        _KERNELS[cache_key] = cupy.RawKernel(head + (source or CUDA_SOURCES[name]), name,
                                             options=CUDA_OPTIONS)
    return _KERNELS[cache_key]


def _launch_elementwise(name, dtype, n, *args):
    """Launch the one-thread-per-element kernel `name(n, *args)` over n elements, with
    T = dtype where it is a float type; Python floats are passed as T."""
    dtype = np.dtype(dtype)
    typed = [dtype.type(a) if isinstance(a, float) else a for a in args]
    if n == 0:  # a grid of no blocks is an invalid launch; there is nothing to do
        return
    threads = 256
    cuda_kernel(name, dtype)(((n + threads - 1) // threads,), (threads,), (np.int64(n), *typed))
