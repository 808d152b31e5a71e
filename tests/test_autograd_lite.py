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
