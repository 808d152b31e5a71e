"""Adam, clipping, the learning-rate schedule, the primitives and the gradient checker."""
import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import autograd_lite as al
from helpers import FD_STEP, assert_grads_match


# --- Adam -------------------------------------------------------------------------------

def test_adam_matches_hand_computed_steps():
    """Two steps on one scalar, β₁ = 0.9, β₂ = 0.999, ε = 1e-8, lr = 0.1.

    Step 1, g = 0.5:  m = 0.05, v = 0.00025, m̂ = 0.5, v̂ = 0.25  → θ = 1 − 0.1·0.5/0.5 = 0.9
    Step 2, g = −1:   m = 0.9·0.05 − 0.1 = −0.055,  v = 0.999·0.00025 + 0.001 = 0.00124975
                      m̂ = −0.055/0.19 = −0.2894737,  v̂ = 0.00124975/0.001999 = 0.6251876
                      θ = 0.9 + 0.1·0.2894737/0.7906880 = 0.9366103
    """
    p = {"w": np.array([1.0])}
    state = al.adam_init(p)
    al.adam_update(p, {"w": np.array([0.5])}, state, lr=0.1)
    assert p["w"][0] == pytest.approx(0.9, abs=1e-7)
    al.adam_update(p, {"w": np.array([-1.0])}, state, lr=0.1)
    m, v = -0.055, 0.00124975
    theta1 = 1.0 - 0.1 * 0.5 / (math.sqrt(0.25) + 1e-8)  # 0.9 up to the ε in the denominator
    expected = theta1 - 0.1 * (m / 0.19) / (math.sqrt(v / (1 - 0.999**2)) + 1e-8)
    assert p["w"][0] == pytest.approx(expected, rel=1e-12)
    assert p["w"][0] == pytest.approx(0.9366103, abs=1e-7)
    assert state["t"] == 2
    assert state["m"]["w"][0] == pytest.approx(m, rel=1e-12)
    assert state["v"]["w"][0] == pytest.approx(v, rel=1e-12)


def test_adam_minimises_a_quadratic():
    """f(θ) = ½ (θ − c)ᵀ A (θ − c), A SPD and ill-conditioned: Adam reaches c."""
    rng = np.random.default_rng(0)
    q, _ = np.linalg.qr(rng.normal(size=(5, 5)))
    A = q @ np.diag([0.1, 0.5, 1.0, 5.0, 20.0]) @ q.T
    c = rng.normal(size=5)
    p = {"theta": np.zeros(5)}
    state = al.adam_init(p)
    for step in range(3000):
        lr = 0.05 if step < 2000 else 0.005
        al.adam_update(p, {"theta": A @ (p["theta"] - c)}, state, lr=lr)
    assert np.max(np.abs(p["theta"] - c)) < 1e-3


def test_adam_rejects_mismatched_keys():
    p = {"a": np.zeros(2)}
    with pytest.raises(ValueError, match="do not match"):
        al.adam_update(p, {"b": np.zeros(2)}, al.adam_init(p), lr=0.1)


# --- clipping and schedule ----------------------------------------------------------------

@given(st.integers(0, 2**32 - 1), st.floats(0.01, 10.0))
def test_clip_scales_to_the_bound_exactly(seed, max_norm):
    rng = np.random.default_rng(seed)
    grads = {"a": rng.normal(size=(3, 4)), "b": rng.normal(size=7)}
    before = {k: v.copy() for k, v in grads.items()}
    norm0 = math.sqrt(sum(np.sum(v * v) for v in before.values()))
    assert al.clip_grad_norm(grads, max_norm) == pytest.approx(norm0, rel=1e-12)
    norm1 = math.sqrt(sum(np.sum(v * v) for v in grads.values()))
    if norm0 > max_norm:
        assert norm1 == pytest.approx(max_norm, rel=1e-12)
        for k in grads:  # direction preserved
            np.testing.assert_allclose(grads[k], before[k] * (max_norm / norm0), rtol=1e-12)
    else:
        for k in grads:
            np.testing.assert_array_equal(grads[k], before[k])


def test_schedule_values():
    total = 1001  # steps 0..1000: 10 % of the run ends at step 100, the last step is 1000
    assert al.lr_factor(0, total) == 1.0
    assert al.lr_factor(50, total) == pytest.approx(5.5)
    assert al.lr_factor(100, total) == pytest.approx(10.0)
    assert al.lr_factor(550, total) == pytest.approx(10.0 + (0.25 - 10.0) * 0.5)
    assert al.lr_factor(1000, total) == pytest.approx(0.25)
    values = [al.lr_factor(s, total) for s in range(total)]
    assert max(values) == pytest.approx(10.0) and min(values) == pytest.approx(0.25)
    assert all(b >= a for a, b in zip(values[:100], values[1:101]))   # rising
    assert all(b <= a for a, b in zip(values[100:], values[101:]))    # falling


@pytest.mark.parametrize("step, total", [(-1, 10), (10, 10), (0, 0)])
def test_schedule_rejects_out_of_range(step, total):
    with pytest.raises(ValueError, match="step"):
        al.lr_factor(step, total)


# --- primitives -------------------------------------------------------------------------------

def test_softplus_is_stable_and_correct():
    z = np.array([-800.0, -30.0, -1.0, 0.0, 1.0, 30.0, 800.0])
    y = al.softplus_forward(z)
    assert np.all(np.isfinite(y))
    np.testing.assert_allclose(y[1:-1], np.log1p(np.exp(z[1:-1])), rtol=1e-14)
    assert y[-1] == 800.0 and y[0] == 0.0
    sig = al.softplus_backward(np.ones_like(z), z)
    np.testing.assert_allclose(sig[1:-1], 1 / (1 + np.exp(-z[1:-1])), rtol=1e-13)


@given(st.integers(0, 2**32 - 1), st.integers(1, 6), st.integers(1, 3))
def test_primitive_backward_passes(seed, n, k):
    """Each primitive's backward against central differences of Σ w ⊙ forward(·)."""
    rng = np.random.default_rng(seed)
    x, W, b = rng.normal(size=(n, k)), rng.normal(size=(k, 2)), rng.normal(size=2)
    wz = rng.normal(size=(n, 2))
    dx, dW, db = al.affine_backward(wz, x, W)
    num = al.numerical_grad(lambda q: np.sum(wz * al.affine_forward(q["x"], q["W"], q["b"])),
                            {"x": x, "W": W, "b": b}, FD_STEP)
    assert_grads_match({"x": dx, "W": dW, "b": db}, num)

    z, w = rng.normal(0, 2, size=(n, k)), rng.normal(size=(n, k))
    assert_grads_match({"z": al.tanh_backward(w, al.tanh_forward(z))},
                       al.numerical_grad(lambda q: np.sum(w * np.tanh(q["z"])), {"z": z}, FD_STEP))
    assert_grads_match({"z": al.softplus_backward(w, z)},
                       al.numerical_grad(lambda q: np.sum(w * al.softplus_forward(q["z"])),
                                         {"z": z}, FD_STEP))

    a, mean, std = rng.normal(size=(n, k)), rng.normal(size=(n, k)), rng.uniform(0.2, 2, (n, k))
    wn = rng.normal(size=n)
    dmean, dstd = al.gaussian_logprob_backward(wn, a, mean, std)
    num = al.numerical_grad(
        lambda q: np.sum(wn * al.gaussian_logprob_forward(a, q["mean"], q["std"])),
        {"mean": mean, "std": std}, FD_STEP)
    assert_grads_match({"mean": dmean, "std": dstd}, num)
    num = al.numerical_grad(lambda q: np.sum(wn * al.gaussian_entropy_forward(q["std"])),
                            {"std": std}, FD_STEP)
    assert_grads_match({"std": al.gaussian_entropy_backward(wn, std)}, num)


def test_numerical_grad_restores_parameters_and_is_accurate():
    p = {"x": np.array([0.3, -1.2])}
    before = p["x"].copy()
    g = al.numerical_grad(lambda q: np.sum(np.sin(q["x"])), p, FD_STEP)
    np.testing.assert_array_equal(p["x"], before)
    np.testing.assert_allclose(g["x"], np.cos(before), rtol=1e-9)
    with pytest.raises(ValueError, match="float64"):
        al.numerical_grad(lambda q: 0.0, {"x": np.zeros(2, np.float32)})


def test_gradient_comparison_detects_a_wrong_gradient():
    """The shared comparison is not vacuous: a gradient off by 1e-4 relative fails it."""
    g = {"w": np.array([1.0, -2.0])}
    with pytest.raises(AssertionError):
        assert_grads_match({"w": g["w"] * (1 + 1e-4)}, g)


def test_shape_errors_name_the_argument():
    with pytest.raises(ValueError, match=r"^y must have shape \(N, 3\), got \(2, 2\)$"):
        al.check_array("y", np.zeros((2, 2)), 2, (None, 3))
    with pytest.raises(ValueError, match="must be an array"):
        al.check_array("y", [1.0], 1)


# --- backend ---------------------------------------------------------------------------------

def test_backend_respects_numpy_override(monkeypatch):
    monkeypatch.setattr(al, "_XP", None)
    monkeypatch.setenv("MFCG_BACKEND", "numpy")
    assert al.get_xp() is np and al.backend_name() == "numpy"
    monkeypatch.setattr(al, "_XP", None)
    monkeypatch.setenv("MFCG_BACKEND", "tpu")
    with pytest.raises(ValueError, match="MFCG_BACKEND"):
        al.get_xp()
    monkeypatch.setattr(al, "_XP", None)


def test_to_numpy_and_xp_of_on_numpy():
    a = np.arange(3.0)
    assert al.xp_of(a) is np and al.to_numpy(a) is a


def test_clip_sums_squares_in_float64_and_rejects_non_finite():
    grads = {"w": np.array([1e20, 1.0], np.float32)}  # Σg² overflows float32
    al.clip_grad_norm(grads, 1.0)
    np.testing.assert_allclose(grads["w"], [1.0, 1e-20], rtol=1e-6)
    with pytest.raises(ValueError, match="not finite"):
        al.clip_grad_norm({"w": np.array([np.nan, 1.0])}, 1.0)


def test_numerical_grad_works_on_non_contiguous_arrays():
    p = {"w": np.arange(6.0).reshape(3, 2).T}  # a transposed view: reshape(-1) would copy
    g = al.numerical_grad(lambda q: np.sum(q["w"] ** 2), p, FD_STEP)
    np.testing.assert_allclose(g["w"], 2 * p["w"], rtol=1e-8, atol=1e-8)


def test_schedule_rejects_bad_warmup():
    with pytest.raises(ValueError, match="warmup_frac"):
        al.lr_factor(0, 10, warmup_frac=0.0)


# --- flat buffers: the layout, and the fused clip + Adam equal to the readable pair ---------

def _net(rng, dtype=np.float64):
    return {"W1": rng.normal(size=(3, 5)).astype(dtype), "b1": rng.normal(size=5).astype(dtype),
            "W2": rng.normal(size=(5, 2)).astype(dtype), "b2": rng.normal(size=2).astype(dtype)}


def test_flat_params_are_views_of_one_buffer():
    arrays = _net(np.random.default_rng(0))
    p = al.FlatParams(arrays)
    assert list(p) == list(arrays) and p.flat.shape == (15 + 5 + 10 + 2,)
    for k in arrays:
        np.testing.assert_array_equal(p[k], arrays[k])
        assert np.shares_memory(p[k], p.flat)
    p.flat[:] = 0.0                       # an update of the buffer is seen through every name
    assert all(not v.any() for v in p.values())
    p["b2"][...] = 7.0                    # and a write through a name lands in the buffer
    assert p.flat[-1] == 7.0
    with pytest.raises(TypeError, match="assign into the view"):
        p["b2"] = np.zeros(2)
    q = p.copy()
    q.flat[:] = 1.0
    assert p.flat[0] == 0.0               # a copy has its own buffer
    np.testing.assert_array_equal(p.pack({k: np.ones_like(v) for k, v in p.items()}), np.ones(32))
    with pytest.raises(ValueError, match="do not match"):
        p.pack({"W1": p["W1"]})
    with pytest.raises(ValueError, match="one dtype"):
        al.FlatParams({"a": np.zeros(2), "b": np.zeros(2, np.float32)})


@given(st.integers(0, 10_000), st.sampled_from([0.0, 0.01, 1.0, 1e3]))
def test_adam_step_is_clip_then_adam(seed, max_norm):
    """Five fused steps on a flat buffer equal clip_grad_norm + adam_update on the named
    arrays (float64; the norm is summed in another order, hence 1e-12)."""
    rng = np.random.default_rng(seed)
    arrays = _net(rng)
    ref = {k: v.copy() for k, v in arrays.items()}
    flat = al.FlatParams(arrays)
    s_ref, s_flat = al.adam_init(ref), al.adam_init(flat)
    assert s_flat["m"].shape == flat.flat.shape
    for _ in range(5):
        grads = {k: rng.normal(size=v.shape) * 3.0 for k, v in arrays.items()}
        g_ref = {k: v.copy() for k, v in grads.items()}
        if max_norm:
            al.clip_grad_norm(g_ref, max_norm)
        al.adam_update(ref, g_ref, s_ref, lr=1e-2)
        al.adam_step(flat, grads, s_flat, lr=1e-2, max_norm=max_norm)
    assert s_flat["t"] == s_ref["t"] == 5
    for k in ref:
        np.testing.assert_allclose(flat[k], ref[k], rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(s_flat["m"], np.concatenate([s_ref["m"][k].ravel() for k in ref]), rtol=1e-11)


def test_adam_step_in_float32_is_adam_update_bit_for_bit_without_clipping():
    """Same operations in the same order: the flat update is exactly the readable one."""
    rng = np.random.default_rng(5)
    arrays = _net(rng, np.float32)
    ref, flat = {k: v.copy() for k, v in arrays.items()}, al.FlatParams(arrays)
    s_ref, s_flat = al.adam_init(ref), al.adam_init(flat)
    for _ in range(3):
        grads = {k: rng.normal(size=v.shape).astype(np.float32) for k, v in arrays.items()}
        al.adam_update(ref, grads, s_ref, lr=1e-3)
        al.adam_step(flat, grads, s_flat, lr=1e-3)
    for k in ref:
        np.testing.assert_array_equal(flat[k], ref[k])


def test_clip_scale_on_the_device():
    g = np.array([3.0, 4.0], np.float32)                 # norm 5
    assert float(al.clip_scale(g, 1.0)) == pytest.approx(0.2)
    assert float(al.clip_scale(g, 5.0)) == 1.0 and float(al.clip_scale(g, 50.0)) == 1.0
    assert al.clip_scale(g, 1.0).dtype == np.float32 and al.clip_scale(g, 1.0).shape == ()
    assert float(al.clip_scale(np.array([1e20, 1e20], np.float32), 1.0)) == pytest.approx(1 / (math.sqrt(2) * 1e20))
    assert math.isnan(float(al.clip_scale(np.array([np.nan, 1.0], np.float32), 1.0)))
    assert float(al.clip_scale(np.array([np.inf, 1.0], np.float32), 1.0)) == 0.0
    for bad in (np.nan, np.inf):  # either way the clipped update leaves a nan parameter
        p = al.FlatParams({"w": np.ones(2, np.float32)})
        with np.errstate(invalid="ignore"):
            al.adam_step(p, {"w": np.array([bad, 1.0], np.float32)}, al.adam_init(p), 0.1, max_norm=1.0)
        assert np.isnan(p["w"][0])


# --- the random streams --------------------------------------------------------------------

# Random123's known answers for Philox4x32-10 (its kat_vectors file): counter, key, output
PHILOX_KAT = [
    ((0, 0, 0, 0), (0, 0), (0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8)),
    ((0xFFFFFFFF,) * 4, (0xFFFFFFFF,) * 2, (0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD)),
    ((0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344), (0xA4093822, 0x299F31D0),
     (0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1)),
]


@pytest.mark.parametrize("counter, key, expected", PHILOX_KAT)
def test_philox_reference_gives_the_known_answers(counter, key, expected):
    out = al.philox4x32([np.array([c], np.uint32) for c in counter], np.array(key, np.uint32))
    assert out.dtype == np.uint32 and tuple(int(w) for w in out[:, 0]) == expected


def test_philox_normals_are_standard_normal_and_keyed():
    key = np.array([12345, 678], np.uint32)
    w0, w1 = al.philox_words(key, 0, 200_000)
    z = al.box_muller(w0, w1)
    assert abs(z.mean()) < 0.01 and abs(z.std() - 1) < 0.01 and np.abs(z).max() < 6.7
    assert abs(np.mean(z ** 4) - 3) < 0.05                      # the normal's kurtosis
    other = al.box_muller(*al.philox_words(key, 1, 1000))     # another draw, another key:
    assert not np.allclose(z[:1000], other)                    # other numbers
    assert not np.allclose(z[:1000], al.box_muller(*al.philox_words(key + 1, 0, 1000)))
    np.testing.assert_array_equal(al.box_muller(*al.philox_words(key, 0, 10)), z[:10])  # a prefix


def test_make_rng_is_keyed_by_its_tuple():
    a = al.make_rng((3, 10, 0), np).standard_normal(5)
    np.testing.assert_array_equal(a, al.make_rng((3, 10, 0), np).standard_normal(5))
    assert not np.array_equal(a, al.make_rng((3, 11, 0), np).standard_normal(5))
