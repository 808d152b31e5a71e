"""fastpaths: the same arithmetic as the readable definitions, faster, and on a GPU.

Why apart: mfcg.py, nets.py and autograd_lite.py hold the algorithm as a student reads it.
What is here changes how fast that algorithm runs and where, never what it computes: each
function names the readable definition it equals and the test that proves it, and
Config.readable (mfcg.py) makes training use the readable definitions instead, end to end.

Contents
    threads     concurrently: independent NumPy calls on two threads
    Langevin    langevin_score_net = mfcg.langevin with s = nets.score_forward; its CUDA kernel
    PPO         gae_by_matmul = mfcg.gae; in_chunks and chunk_mean = one call on all the rows
    Adam        FlatParams (a network's arrays as views into one buffer) and adam_step
                = autograd_lite.clip_grad_norm + adam_update, on that buffer, on the device
    random      make_rng: the stream keyed by a tuple (NumPy's Generator; on CuPy a Philox
                stream computed on the device: PhiloxStream, philox4x32, box_muller)
    CUDA        the kernels' sources, compiled by cuda_kernel and launched by _launch_elementwise
    timing      sync, PhaseTimer (time spent in given functions, by phase), device_name
                and machine: what the benchmark (run_experiments.py bench) is built from
"""
import math
import os
import platform
import re
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from autograd_lite import check_array, get_xp, xp_of

# ---------------------------------------------------------------------------------------
# Threads
# ---------------------------------------------------------------------------------------

_THREADS = ThreadPoolExecutor(max_workers=2, thread_name_prefix="mfcg")
PARALLEL_MIN_WORK = 2 ** 17  # below ~this many hidden activations a thread costs more than it saves


def concurrently(calls, work, in_order=False):
    """[fn(*args) for fn, *args in calls], the calls being independent: on two threads
    when on NumPy and each call is big enough (`work` ≈ its hidden activations) for
    NumPy's GIL-free ufuncs to overlap; in order, on this thread, with in_order
    (Config.readable). The results do not depend on the choice
    (tests/test_speed.py::test_threads_do_not_change_results)."""
    if len(calls) > 1 and work >= PARALLEL_MIN_WORK and get_xp() is np and not in_order:
        return list(_THREADS.map(lambda call: call[0](*call[1:]), calls))
    return [fn(*args) for fn, *args in calls]


# ---------------------------------------------------------------------------------------
# Langevin: mfcg.langevin with the score network written out, and its CUDA kernel
# ---------------------------------------------------------------------------------------

def langevin_score_net(p, pool, noise, eps):
    """mfcg.langevin(s, pool, noise, eps) with s(x) = nets.score_forward(p, x), for speed.

    The same update x ← x + (ε/2) s(x) + √ε z with s(x) = tanh(x W1 + b1) W2 + b2, over
    the pool (k, d), one iteration per slice of `noise` (n_steps, k, d) of standard normals.
    Preallocated buffers and in-place ufuncs (no temporaries in the loop); for d = 1 the
    first layer is a broadcast product, not a (k,1)@(1,H) matmul. Given the same normals
    the result is bit-for-bit `langevin`'s (tests/test_speed.py). On CuPy it runs the fused
    kernel LANGEVIN_CUDA instead (tests/test_gpu.py). Unlike `langevin` it does not check
    the pool is finite: that would stop the GPU at every refresh; the training loop checks
    the pools at every evaluation and checkpoint instead.
    """
    check_array("pool", pool, 2)
    xp = xp_of(pool)
    k, d = pool.shape
    if noise.ndim != 3 or noise.shape[1:] != pool.shape:
        raise ValueError(f"noise must have shape (n_steps, {k}, {d}), got {tuple(noise.shape)}")
    n_steps = noise.shape[0]
    if xp is not np:
        return _langevin_cuda(p, pool, noise, eps)
    W1, b1, W2, b2 = p["W1"], p["b1"], p["W2"], p["b2"]
    x = pool.copy()                                          # (k, d)
    h = xp.empty((k, W1.shape[1]), dtype=pool.dtype)          # (k, H)
    s = xp.empty((k, d), dtype=pool.dtype)                   # (k, d)
    half, root = pool.dtype.type(0.5 * eps), pool.dtype.type(math.sqrt(eps))
    w1 = W1[0] if d == 1 else None
    for i in range(n_steps):
        if d == 1:
            xp.multiply(x, w1, out=h)                        # (k,1)·(H,) → (k,H)
        else:
            xp.matmul(x, W1, out=h)
        h += b1
        xp.tanh(h, out=h)
        xp.matmul(h, W2, out=s)
        s += b2
        s *= half
        x += s
        x += root * noise[i]
    return x


# The same iterations as langevin_score_net as one CUDA kernel: a warp (32 threads) per
# sample. Lane l owns the hidden units j = l, l + 32, ... and keeps their weights in
# registers; each iteration it adds its units' share of s(x) = tanh(x W1 + b1) W2, and a
# butterfly of five shuffles sums the 32 shares, so every lane of the warp holds the whole
# s(x) and moves x the same way. d (D) and H are compile-time constants, so the loops
# unroll. Weights are row-major as in nets (W1 (d, H), W2 (H, d)).
LANGEVIN_CUDA = r"""
#define HPL ((H + 31) / 32)
extern "C" __global__ void langevin_warp(
        const long long k, const T* __restrict__ pool, const T* __restrict__ noise,
        const T* __restrict__ W1, const T* __restrict__ b1,
        const T* __restrict__ W2, const T* __restrict__ b2,
        T* __restrict__ out, const int n_steps, const T half, const T root) {
    const long long i = ((long long)blockDim.x * blockIdx.x + threadIdx.x) / 32;
    const int lane = threadIdx.x % 32;
    if (i >= k) return;  /* i is the same for the 32 lanes of a warp: whole warps leave */
    T w1[HPL][D], c1[HPL], w2[HPL][D], x[D], bias2[D];
#pragma unroll
    for (int u = 0; u < HPL; ++u) {
        const int j = lane + 32 * u;
        c1[u] = j < H ? b1[j] : (T)0;
#pragma unroll
        for (int a = 0; a < D; ++a) {
            w1[u][a] = j < H ? W1[a * H + j] : (T)0;
            w2[u][a] = j < H ? W2[j * D + a] : (T)0;  /* a missing unit adds nothing */
        }
    }
#pragma unroll
    for (int a = 0; a < D; ++a) { x[a] = pool[i * D + a]; bias2[a] = b2[a]; }
    for (int t = 0; t < n_steps; ++t) {
        T s[D];
#pragma unroll
        for (int a = 0; a < D; ++a) s[a] = (T)0;
#pragma unroll
        for (int u = 0; u < HPL; ++u) {
            T z = c1[u];
#pragma unroll
            for (int a = 0; a < D; ++a) z += x[a] * w1[u][a];
            const T h = tanh(z);
#pragma unroll
            for (int a = 0; a < D; ++a) s[a] += h * w2[u][a];
        }
#pragma unroll
        for (int a = 0; a < D; ++a) {
#pragma unroll
            for (int offset = 16; offset > 0; offset /= 2)
                s[a] += __shfl_xor_sync(0xffffffffu, s[a], offset);
            x[a] += half * (s[a] + bias2[a]) + root * noise[((long long)t * k + i) * D + a];
        }
    }
    if (lane == 0) {
#pragma unroll
        for (int a = 0; a < D; ++a) out[i * D + a] = x[a];
    }
}
"""


def _langevin_cuda(p, pool, noise, eps):
    """Launch LANGEVIN_CUDA (CuPy arrays): one warp per sample; returns the new pool (k, d)."""
    import cupy
    k, d = pool.shape
    dtype = np.dtype(pool.dtype)
    H = p["W1"].shape[1]
    if k == 0 or noise.shape[0] == 0:
        return pool.copy()
    kernel = cuda_kernel("langevin_warp", dtype, LANGEVIN_CUDA, (("D", d), ("H", H)))
    c = lambda a: cupy.ascontiguousarray(a, dtype=dtype)  # noqa: E731
    out = cupy.empty((k, d), dtype=dtype)
    threads = 128  # four samples per block
    kernel(((32 * k + threads - 1) // threads,), (threads,),
           (np.int64(k), c(pool), c(noise), c(p["W1"]), c(p["b1"]), c(p["W2"]), c(p["b2"]), out,
            np.int32(noise.shape[0]), dtype.type(0.5 * eps), dtype.type(math.sqrt(eps))))
    return out


# ---------------------------------------------------------------------------------------
# PPO: GAE as one product, and the losses a chunk of rows at a time
# ---------------------------------------------------------------------------------------

def gae_by_matmul(rewards, values, next_values, gamma, lam):
    """`gae` as one matrix product: Â_m = Σ_{j ≥ m} (γλ)^{j−m} δ_j, so Â = U δ with U the
    (M, M) upper-triangular matrix U[m, j] = (γλ)^{j−m}. One operation instead of M small
    ones, which is what a GPU wants; on a CPU it costs M times the loop's arithmetic, so
    ppo_update uses it on CuPy only. Equal to mfcg.gae up to rounding (tests/test_trainers.py,
    tests/test_gpu.py)."""
    xp = xp_of(rewards)
    deltas = rewards + gamma * next_values - values
    j = xp.arange(deltas.shape[0])                      # built on the device: no transfer
    lag = j[None, :] - j[:, None]
    U = xp.where(lag >= 0, (gamma * lam) ** xp.maximum(lag, 0), 0.0).astype(deltas.dtype)
    adv = U @ deltas
    return adv, adv + values


# Rows per chunk of the PPO losses: on NumPy one time step (B rows), which keeps the
# activations in cache; on CuPy 2^18 rows, so a rollout of 256 × 8192 agents is 8 chunks.
PPO_CHUNK_ROWS = {"numpy": None, "cupy": 1 << 18}


def chunk_rows(xp, batch):
    """How many rows of the rollout ppo_update takes at a time (PPO_CHUNK_ROWS); any
    choice gives the same update up to rounding (tests/test_trainers.py::
    test_ppo_update_in_big_chunks_equals_one_time_step_per_chunk)."""
    return PPO_CHUNK_ROWS[xp.__name__] or batch


def _chunks(args, rows):
    """args = (a network's parameters, arrays whose first axis is the rows, constants) →
    the same argument tuples over consecutive chunks of at most `rows` rows."""
    n = args[1].shape[0]
    return [tuple(a[i:i + rows] if getattr(a, "ndim", 0) else a for a in args) for i in range(0, n, rows)]


def in_chunks(fn, args, rows):
    """fn(*args) for a function of each row alone (nets.critic_forward): computed `rows`
    rows at a time and concatenated. One call when the rows fit in one chunk."""
    if args[1].shape[0] <= rows:
        return fn(*args)
    return xp_of(args[1]).concatenate([fn(*chunk) for chunk in _chunks(args, rows)])


def chunk_mean(loss_and_grad, args, rows):
    """loss_and_grad(*args), a loss that is a mean over the rows, with its gradients,
    computed `rows` rows at a time: the chunk means weighted by their share of the rows,
    which is the mean over all rows (tests/test_speed.py::
    test_chunk_mean_is_the_full_batch_mean). The sums stay on the device. One call when the
    rows fit in one chunk."""
    n_rows = args[1].shape[0]
    if n_rows <= rows:
        return loss_and_grad(*args)
    total, grads = 0.0, None
    for chunk in _chunks(args, rows):
        w = chunk[1].shape[0] / n_rows
        loss, g = loss_and_grad(*chunk)
        total = total + w * loss
        if grads is None:
            grads = {k: w * v for k, v in g.items()}
        else:
            for k in grads:
                grads[k] += w * g[k]
    return total, grads


# ---------------------------------------------------------------------------------------
# Adam on one flat buffer per network: autograd_lite's clip_grad_norm and adam_update as
# one update of that buffer, with no host round trip
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
    """autograd_lite's clip_grad_norm (when max_norm > 0) followed by its adam_update, on a
    FlatParams and an Adam state from adam_init(params) (flat moments), without leaving
    the device (tests/test_speed.py: equal up to the order the norm's squares are summed,
    bit for bit without clipping).

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
    c2 = 1 − β₂ᵗ, the same operations in the same order as autograd_lite.adam_update:
        g ← scale·g,  m ← β₁m + (1 − β₁)g,  v ← β₂v + (1 − β₂)g²,  p ← p − lr_t m / (√(v/c2) + ε)
    """
    # plain Python floats: under NumPy's promotion rules a NumPy float64 here would lift the
    # float32 arithmetic to float64 and part the two branches
    lr_t, beta1, beta2, c2, eps = map(float, (lr_t, beta1, beta2, c2, eps))
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

# philox_normal: box_muller(philox_words(key, draw, n)) cast to T (above)
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


# ---------------------------------------------------------------------------------------
# The benchmark: steps/s of each trainer and where a step's time goes
# ---------------------------------------------------------------------------------------

def sync(xp):
    """Wait until the GPU has done all the work queued so far (nothing to do on NumPy)."""
    if xp is not np:
        xp.cuda.get_current_stream().synchronize()


class PhaseTimer:
    """Time spent inside given functions, summed by phase. It watches calls through the
    interpreter's profiling hook (sys.setprofile, this thread only) and replaces nothing;
    on a GPU it synchronises the device at each entry and exit, so a phase is charged with
    its own kernels and not with those queued before it. The hook costs a little on every
    Python call; bench_algo therefore takes steps/s from a window timed without it."""

    def __init__(self, phases, xp):
        self.phase_of = {fn.__code__: phase for phase, fns in phases.items() for fn in fns}
        self.totals = dict.fromkeys(phases, 0.0)
        self.xp, self._entered = xp, {}

    def _hook(self, frame, event, arg):
        phase = self.phase_of.get(frame.f_code)
        if phase is None or event not in ("call", "return"):
            return
        sync(self.xp)
        if event == "call":
            self._entered[frame] = time.perf_counter()
        else:
            self.totals[phase] += time.perf_counter() - self._entered.pop(frame)

    def __enter__(self):
        sys.setprofile(self._hook)
        return self

    def __exit__(self, *exc):
        sys.setprofile(None)


def device_name(xp):
    """The device the arrays live on, in words, and as a directory name: ('NVIDIA H200',
    'gpu-nvidia-h200') or ('x86_64 Linux, 2 cores', 'cpu-2-cores')."""
    if xp is np:
        return machine(), f"cpu-{os.cpu_count()}-cores"
    name = xp.cuda.runtime.getDeviceProperties(xp.cuda.Device().id)["name"]
    name = name.decode() if isinstance(name, bytes) else str(name)
    return name, "gpu-" + re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


def machine():
    """The host, in words, as the platform module reports it (on Linux without the CPU's
    model name, which docs/performance.md gives beside the numbers), and its cores."""
    return f"{platform.processor() or platform.machine()} {platform.system()}, {os.cpu_count()} cores"
