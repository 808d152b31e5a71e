"""Every hand-derived gradient in nets.py against float64 central differences, on shapes,
seeds and values drawn by hypothesis; plus the score-matching trace and Hutchinson checks.

The recipe of a gradient check, as every test_*_gradient below follows it:
  1. Parameters and inputs in float64 (init_* with dtype=np.float64, inputs drawn from a
     NumPy Generator). numerical_grad refuses anything else: in float32 the differences
     below would be round-off.
  2. The numerical gradient: central differences (L(θ + h eᵢ) − L(θ − h eᵢ)) / 2h, one
     entry of one parameter at a time (autograd_lite.numerical_grad), h = FD_STEP = 1e-6.
  3. The comparison (assert_grads_match, tests/helpers.py): for every parameter,
        max |analytic − numerical| ≤ GRAD_ATOL + GRAD_RTOL · max |numerical|
     with GRAD_RTOL = 1e-6, GRAD_ATOL = 1e-9. Why these: the truncation error of central
     differences is ~h² ≈ 1e-12, the round-off ~1e-16/h ≈ 1e-10 of the loss's scale, so a
     correct gradient misses by far less than 1e-6 of its largest entry, while a wrong term
     (a sign, a factor, a missing path) misses by a sizeable part of it. The bound scales
     with the largest entry, not each entry, since small entries carry the same absolute
     round-off; GRAD_ATOL is for gradients that are all zero or nearly.
  4. The negative control: test_a_wrong_gradient_fails_the_check moves one analytic entry
     by 100 times the tolerance and expects assert_grads_match to raise, so a pass means
     something.
  5. What hypothesis draws (the named strategies below): the state dimension d (dims) and
     action dimension k (acts), the hidden width H (hiddens), the batch N (batches, or
     few_rows where the check loops over rows), the seed of the Generator behind every
     weight and input (seeds), the actor's std floor (floors), and per test the PPO clip
     (clips), the entropy weight (ent_coefs) and the kind of Hutchinson probe
     (probe_kinds). 30 examples per test (tests/conftest.py; the same ones every run under
     CI). Where a loss has a kink (PPO at ρ = 1 ± clip) assume() discards the draws near it:
     there central differences are not the derivative.
"""
import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

import nets
from autograd_lite import numerical_grad
from helpers import FD_STEP, assert_grads_match

dims = st.integers(1, 3)
acts = st.integers(1, 2)
hiddens = st.integers(1, 16)
batches = st.integers(1, 32)
seeds = st.integers(0, 2**32 - 1)
floors = st.sampled_from([nets.STD_FLOOR, 0.5])  # the paper's floor and the quick preset's
few_rows = st.integers(1, 6)          # batches for the per-row loop of the Jacobian-trace check
clips = st.floats(0.05, 0.5)          # PPO clip c: ratios are clipped to [1 − c, 1 + c]
ent_coefs = st.floats(0.0, 0.1)       # PPO entropy weight
probe_kinds = st.sampled_from(["gaussian", "rademacher"])  # Hutchinson probes u, E[u uᵀ] = I


def _actor_case(d, k, hidden, n, seed):
    rng = np.random.default_rng(seed)
    p = nets.init_actor(d, k, rng, hidden=hidden, dtype=np.float64, xp=np)
    x = rng.normal(0.0, 1.5, size=(n, d))
    a = rng.normal(0.0, 1.5, size=(n, k))
    adv = rng.normal(0.0, 1.0, size=n)
    return rng, p, x, a, adv


@given(dims, acts, hiddens, batches, seeds, floors)
def test_actor_loss_gradient(d, k, hidden, n, seed, floor):
    _, p, x, a, adv = _actor_case(d, k, hidden, n, seed)
    _, grads = nets.actor_loss_and_grad(p, x, a, adv, floor)
    num = numerical_grad(lambda q: nets.actor_loss_and_grad(q, x, a, adv, floor)[0], p, FD_STEP)
    assert_grads_match(grads, num)


@given(dims, acts, hiddens, batches, seeds, clips, ent_coefs, floors)
def test_ppo_loss_gradient(d, k, hidden, n, seed, clip, ent_coef, floor):
    rng, p, x, a, adv = _actor_case(d, k, hidden, n, seed)
    # old log-probs spread so that ratios fall on both sides of the clip range
    logp_old = nets.actor_log_prob(p, x, a, floor) + rng.normal(0.0, 0.5, size=n)
    ratio = np.exp(nets.actor_log_prob(p, x, a, floor) - logp_old)
    # the loss has kinks at ρ = 1 ± clip: central differences are invalid right at them
    assume(np.min(np.abs(ratio - (1 - clip))) > 1e-3 and np.min(np.abs(ratio - (1 + clip))) > 1e-3)
    loss_fn = lambda q: nets.ppo_loss_and_grad(q, x, a, adv, logp_old, clip, ent_coef, floor)[0]  # noqa: E731
    _, grads = nets.ppo_loss_and_grad(p, x, a, adv, logp_old, clip, ent_coef, floor)
    assert_grads_match(grads, numerical_grad(loss_fn, p, FD_STEP))


@given(dims, acts, hiddens, batches, seeds)
def test_ppo_equals_policy_gradient_at_ratio_one(d, k, hidden, n, seed):
    _, p, x, a, adv = _actor_case(d, k, hidden, n, seed)
    logp_old = nets.actor_log_prob(p, x, a)  # ρ = 1 exactly
    loss_ppo, g_ppo = nets.ppo_loss_and_grad(p, x, a, adv, logp_old, 0.2, 0.0)
    loss_pg, g_pg = nets.actor_loss_and_grad(p, x, a, adv)
    # the losses differ by a constant (ρA vs A log π) but the gradients are the same
    for key in g_pg:
        np.testing.assert_allclose(g_ppo[key], g_pg[key], rtol=1e-10, atol=1e-14)


@given(dims, hiddens, batches, seeds)
def test_critic_loss_gradient(d, hidden, n, seed):
    rng = np.random.default_rng(seed)
    p = nets.init_critic(d, rng, hidden=hidden, dtype=np.float64, xp=np)
    x = rng.normal(0.0, 1.5, size=(n, d))
    y = rng.normal(0.0, 1.0, size=n)
    _, grads = nets.critic_loss_and_grad(p, x, y)
    num = numerical_grad(lambda q: nets.critic_loss_and_grad(q, x, y)[0], p, FD_STEP)
    assert_grads_match(grads, num)


@given(dims, acts, hiddens, batches, seeds, floors)
def test_actor_pathwise_loss_gradient(d, k, hidden, n, seed, floor):
    """The pathwise loss differentiates a = mean_θ(x) + std_θ(x) ⊙ ε with ε held fixed: the
    numerical gradient is taken of that function of θ, at the θ the actions were drawn with."""
    rng, p, x, _, _ = _actor_case(d, k, hidden, n, seed)
    eps, q = rng.normal(size=(n, k)), rng.normal(0.0, 1.0, size=(n, k))
    mean, std, _ = nets.actor_forward(p, x, floor)
    a = mean + std * eps

    def reparameterised(params):
        m, s, _ = nets.actor_forward(params, x, floor)
        return -(q * (m + s * eps)).sum(axis=1).mean()

    loss, grads = nets.actor_pathwise_loss_and_grad(p, x, a, q, floor)
    assert loss == pytest.approx(reparameterised(p), rel=1e-12)
    assert_grads_match(grads, numerical_grad(reparameterised, p, FD_STEP))


@given(dims, hiddens, batches, seeds)
def test_critic_input_gradient(d, hidden, n, seed):
    rng = np.random.default_rng(seed)
    p = nets.init_critic(d, rng, hidden=hidden, dtype=np.float64, xp=np)
    x = rng.normal(0.0, 1.5, size=(n, d))
    num = np.empty_like(x)
    for i in range(d):
        e = np.zeros(d)
        e[i] = FD_STEP
        num[:, i] = (nets.critic_forward(p, x + e) - nets.critic_forward(p, x - e)) / (2 * FD_STEP)
    value, grad = nets.critic_value_and_input_grad(p, x)
    np.testing.assert_array_equal(value, nets.critic_forward(p, x))   # the same V as critic_forward
    np.testing.assert_allclose(grad, num, rtol=1e-6, atol=1e-9)


def _score_case(d, hidden, n, seed):
    rng = np.random.default_rng(seed)
    p = nets.init_score(d, rng, hidden=hidden, dtype=np.float64, xp=np)
    p = {k: 2.0 * v for k, v in p.items()}  # larger weights: tanh curvature matters
    x = rng.normal(0.0, 1.5, size=(n, d))
    return rng, p, x


@given(dims, hiddens, batches, seeds)
def test_score_loss_gradient_exact_trace(d, hidden, n, seed):
    _, p, x = _score_case(d, hidden, n, seed)
    _, grads = nets.score_loss_and_grad(p, x)
    num = numerical_grad(lambda q: nets.score_loss_and_grad(q, x)[0], p, FD_STEP)
    assert_grads_match(grads, num)


@given(dims, hiddens, batches, seeds, probe_kinds)
def test_score_loss_gradient_hutchinson(d, hidden, n, seed, kind):
    rng, p, x = _score_case(d, hidden, n, seed)
    z = rng.standard_normal((n, d)) if kind == "gaussian" else rng.choice([-1.0, 1.0], (n, d))
    _, grads = nets.score_loss_and_grad(p, x, probes=z)
    num = numerical_grad(lambda q: nets.score_loss_and_grad(q, x, probes=z)[0], p, FD_STEP)
    assert_grads_match(grads, num)


@pytest.mark.parametrize("net", ["actor", "critic", "score"])
def test_a_wrong_gradient_fails_the_check(net):
    """The negative control: the correct gradient passes the check, and the same gradient
    with one W1 entry moved by 1e-4 of W1's largest numerical entry (100 × GRAD_RTOL) fails."""
    _, pa, x, a, adv = _actor_case(2, 1, 4, 8, 11)
    y = np.random.default_rng(12).normal(size=8)
    pc = nets.init_critic(2, np.random.default_rng(13), hidden=4, dtype=np.float64, xp=np)
    _, ps, _ = _score_case(2, 4, 8, 14)
    loss_and_grad, p = {"actor": (lambda q: nets.actor_loss_and_grad(q, x, a, adv), pa),
                        "critic": (lambda q: nets.critic_loss_and_grad(q, x, y), pc),
                        "score": (lambda q: nets.score_loss_and_grad(q, x), ps)}[net]
    _, grads = loss_and_grad(p)
    num = numerical_grad(lambda q: loss_and_grad(q)[0], p, FD_STEP)
    assert_grads_match(grads, num)
    wrong = {k: g.copy() for k, g in grads.items()}
    wrong["W1"][0, 0] += 1e-4 * np.max(np.abs(num["W1"]))
    with pytest.raises(AssertionError, match="W1"):
        assert_grads_match(wrong, num)


def _trace_term(p, x, probes=None):
    """Per-sample trace term of the loss: run the loss on one sample at a time."""
    out = []
    for i in range(x.shape[0]):
        xi = x[i:i + 1]
        loss, _ = nets.score_loss_and_grad(p, xi, None if probes is None else probes[i:i + 1])
        s = nets.score_forward(p, xi)
        out.append(loss - 0.5 * np.sum(s * s))
    return np.array(out)


@given(dims, hiddens, few_rows, seeds)
def test_exact_trace_is_the_jacobian_trace(d, hidden, n, seed):
    """The closed-form trace equals the trace of the Jacobian ∇ₓs found by differencing s."""
    _, p, x = _score_case(d, hidden, n, seed)
    h = 1e-6
    fd_trace = np.zeros(n)
    for i in range(d):
        e = np.zeros(d)
        e[i] = h
        fd_trace += (nets.score_forward(p, x + e)[:, i] - nets.score_forward(p, x - e)[:, i]) / (2 * h)
    np.testing.assert_allclose(_trace_term(p, x), fd_trace, rtol=1e-7, atol=1e-8)


def test_hutchinson_is_unbiased():
    """The mean of zᵀ∇ₓs z over many probes approaches the exact trace, for Gaussian and
    Rademacher probes, within 5 standard errors estimated from the probes themselves."""
    rng = np.random.default_rng(1234)
    d, hidden, n_probes = 3, 16, 20000
    p = {k: 2.0 * v for k, v in nets.init_score(d, rng, hidden=hidden, dtype=np.float64, xp=np).items()}
    x = rng.normal(0.0, 1.0, size=(1, d))
    exact = _trace_term(p, x)[0]
    xs = np.repeat(x, n_probes, axis=0)
    for z in (rng.standard_normal((n_probes, d)), rng.choice([-1.0, 1.0], (n_probes, d))):
        est = _hutchinson_per_probe(p, xs, z)
        se = est.std(ddof=1) / np.sqrt(n_probes)
        assert se > 0  # d = 3: the estimator really is random
        assert abs(est.mean() - exact) < 5 * se, (est.mean(), exact, se)


def _hutchinson_per_probe(p, xs, z):
    """zₙᵀ ∇ₓs(xₙ) zₙ for every row at once (the loss only returns their mean; the bound
    needs their spread). Checked against the loss itself in the next test."""
    a = np.tanh(xs @ p["W1"] + p["b1"])
    return ((1 - a * a) * (z @ p["W1"]) * (z @ p["W2"].T)).sum(axis=1)


def test_hutchinson_helper_agrees_with_loss():
    """The per-probe helper above is the loss's own trace term (so the unbiasedness test
    tests nets.py, not a copy)."""
    rng = np.random.default_rng(7)
    p = nets.init_score(2, rng, hidden=8, dtype=np.float64, xp=np)
    x = rng.normal(size=(5, 2))
    z = rng.standard_normal((5, 2))
    np.testing.assert_allclose(_hutchinson_per_probe(p, x, z), _trace_term(p, x, z), rtol=1e-12)


def test_rademacher_hutchinson_is_exact_in_one_dimension():
    """In d = 1 a Rademacher probe has z² = 1, so the estimate equals the exact trace."""
    rng = np.random.default_rng(3)
    p = nets.init_score(1, rng, hidden=8, dtype=np.float64, xp=np)
    x = rng.normal(size=(10, 1))
    z = rng.choice([-1.0, 1.0], (10, 1))
    exact, _ = nets.score_loss_and_grad(p, x)
    hutch, _ = nets.score_loss_and_grad(p, x, probes=z)
    assert abs(exact - hutch) < 1e-12


# --- forward behaviour and input validation ---------------------------------------------

def test_actor_sample_has_the_policy_moments():
    rng = np.random.default_rng(0)
    p = nets.init_actor(2, 2, rng, dtype=np.float64, xp=np)
    x = np.tile(rng.normal(size=(1, 2)), (200000, 1))
    a = nets.actor_sample(p, x, rng)
    mean, std, _ = nets.actor_forward(p, x[:1])
    np.testing.assert_allclose(a.mean(axis=0), mean[0], atol=5 * std.max() / np.sqrt(200000))
    np.testing.assert_allclose(a.std(axis=0), std[0], rtol=0.01)
    assert np.all(std >= nets.STD_FLOOR)


def test_std_floor_shifts_the_std_and_nothing_else():
    """std = softplus(h Ws + bs) + floor: a floor of 0.5 adds exactly 0.5 to the std, leaves
    the mean alone, and the sampler, log-density and entropy all use the floored std."""
    from scipy.stats import norm
    rng = np.random.default_rng(3)
    p = nets.init_actor(1, 1, rng, dtype=np.float64, xp=np)
    x, a = rng.normal(size=(5, 1)), rng.normal(size=(5, 1))
    mean0, std0, _ = nets.actor_forward(p, x, 0.0)
    mean, std, _ = nets.actor_forward(p, x, 0.5)
    np.testing.assert_array_equal(mean, mean0)
    np.testing.assert_allclose(std, std0 + 0.5, rtol=1e-15)
    np.testing.assert_allclose(nets.actor_log_prob(p, x, a, 0.5), norm.logpdf(a, mean, std)[:, 0], rtol=1e-12)
    np.testing.assert_allclose(nets.actor_entropy(p, x, 0.5), norm.entropy(0.0, std)[:, 0], rtol=1e-12)
    z = np.random.default_rng(9).standard_normal((5, 1))
    np.testing.assert_allclose(nets.actor_sample(p, x, np.random.default_rng(9), 0.5), mean + std * z, rtol=1e-12)


def test_log_prob_and_entropy_match_scipy():
    from scipy.stats import norm
    rng = np.random.default_rng(1)
    p = nets.init_actor(3, 2, rng, dtype=np.float64, xp=np)
    x, a = rng.normal(size=(6, 3)), rng.normal(size=(6, 2))
    mean, std, _ = nets.actor_forward(p, x)
    np.testing.assert_allclose(nets.actor_log_prob(p, x, a),
                               norm.logpdf(a, mean, std).sum(axis=1), rtol=1e-12)
    np.testing.assert_allclose(nets.actor_entropy(p, x), norm.entropy(0, std).sum(axis=1), rtol=1e-12)


def test_float32_stays_float32():
    rng = np.random.default_rng(2)
    p = nets.init_score(2, rng, xp=np)
    x = rng.normal(size=(4, 2)).astype(np.float32)
    loss, grads = nets.score_loss_and_grad(p, x)
    assert all(g.dtype == np.float32 for g in grads.values())


@pytest.mark.parametrize("bad, match", [
    (lambda n: np.zeros((n, 1)), r"adv must have shape \(4,\), got \(4, 1\)"),
    (lambda n: np.zeros(n + 1), r"adv must have shape \(4,\), got \(5,\)"),
    (lambda n: np.zeros(n, dtype=int), r"adv must be a floating array"),
])
def test_actor_loss_rejects_bad_advantages(bad, match):
    rng = np.random.default_rng(0)
    p = nets.init_actor(1, 1, rng, dtype=np.float64, xp=np)
    x, a = rng.normal(size=(4, 1)), rng.normal(size=(4, 1))
    with pytest.raises(ValueError, match=match):
        nets.actor_loss_and_grad(p, x, a, bad(4))


def test_networks_reject_wrong_state_dimension():
    rng = np.random.default_rng(0)
    p = nets.init_critic(2, rng, dtype=np.float64, xp=np)
    with pytest.raises(ValueError, match=r"x must have shape \(N, 2\), got \(4, 3\)"):
        nets.critic_forward(p, np.zeros((4, 3)))
    with pytest.raises(ValueError, match=r"x must have shape \(N, 2\), got \(4,\)"):
        nets.critic_loss_and_grad(p, np.zeros(4), np.zeros(4))


# --- loss values against independent references (a loss and its gradient that are wrong in
# --- the same way pass the finite-difference tests; these catch that) -------------------------

def _one_sample_actor(seed=0):
    rng = np.random.default_rng(seed)
    p = nets.init_actor(1, 1, rng, dtype=np.float64, xp=np)
    x, a = np.array([[0.3]]), np.array([[0.1]])
    return p, x, a


@pytest.mark.parametrize("adv, ratio, selected", [
    (2.0, 1.1, "unclipped"),    # inside the range: ρA
    (2.0, 1.5, "clipped"),      # A > 0, ρ > 1 + c: (1 + c)A, no gradient
    (2.0, 0.5, "unclipped"),    # A > 0, ρ < 1 − c: ρA is the smaller, gradient flows
    (-2.0, 0.5, "clipped"),     # A < 0, ρ < 1 − c: (1 − c)A, no gradient
    (-2.0, 1.5, "unclipped"),   # A < 0, ρ > 1 + c: ρA is the smaller, gradient flows
])
def test_ppo_loss_value_and_which_branch_carries_the_gradient(adv, ratio, selected):
    p, x, a = _one_sample_actor()
    clip, c_ent = 0.2, 0.05
    logp_old = nets.actor_log_prob(p, x, a) - np.log(ratio)
    mean, std, _ = nets.actor_forward(p, x)
    entropy = 0.5 * np.log(2 * np.pi * np.e * std[0, 0] ** 2)
    surrogate = min(ratio * adv, min(max(ratio, 1 - clip), 1 + clip) * adv)
    loss, grads = nets.ppo_loss_and_grad(p, x, a, np.array([adv]), logp_old, clip, c_ent)
    assert float(loss) == pytest.approx(-surrogate - c_ent * entropy, rel=1e-12)
    _, g_ent_only = nets.ppo_loss_and_grad(p, x, a, np.array([0.0]), logp_old, clip, c_ent)
    _, g_pg = nets.actor_loss_and_grad(p, x, a, np.array([adv * ratio]))
    for k in grads:  # surrogate gradient: ρA·∇log π when unclipped, 0 when clipped
        expect = g_ent_only[k] + (g_pg[k] if selected == "unclipped" else 0.0)
        np.testing.assert_allclose(grads[k], expect, rtol=1e-10, atol=1e-14)


def test_policy_gradient_loss_value_matches_scipy():
    from scipy.stats import norm
    rng = np.random.default_rng(4)
    p = nets.init_actor(2, 2, rng, dtype=np.float64, xp=np)
    x, a, adv = rng.normal(size=(7, 2)), rng.normal(size=(7, 2)), rng.normal(size=7)
    mean, std, _ = nets.actor_forward(p, x)
    expect = -np.mean(adv * norm.logpdf(a, mean, std).sum(axis=1))
    assert float(nets.actor_loss_and_grad(p, x, a, adv)[0]) == pytest.approx(expect, rel=1e-12)


def test_critic_and_score_loss_values_by_direct_computation():
    rng = np.random.default_rng(5)
    pc = nets.init_critic(2, rng, dtype=np.float64, xp=np)
    x, y = rng.normal(size=(9, 2)), rng.normal(size=9)
    v = np.tanh(x @ pc["W1"] + pc["b1"]) @ pc["W2"][:, 0] + pc["b2"][0]
    assert float(nets.critic_loss_and_grad(pc, x, y)[0]) == pytest.approx(np.mean((y - v) ** 2), rel=1e-12)
    # score loss of a linear score s(x) = −x (exact N(0, 1) score, here via a near-linear
    # tanh layer) is E[−d + ½|x|²]; checked with the Jacobian built from finite differences
    ps = nets.init_score(2, rng, dtype=np.float64, xp=np)
    s = nets.score_forward(ps, x)
    h, tr = 1e-6, np.zeros(9)
    for i in range(2):
        e = np.zeros(2)
        e[i] = h
        tr += (nets.score_forward(ps, x + e)[:, i] - nets.score_forward(ps, x - e)[:, i]) / (2 * h)
    expect = np.mean(tr + 0.5 * (s * s).sum(axis=1))
    assert float(nets.score_loss_and_grad(ps, x)[0]) == pytest.approx(expect, rel=1e-8)


def _descend(p, grads, lr):
    return {k: p[k] - lr * grads[k] for k in p}


def test_gradient_steps_move_the_right_way():
    """A small step against each gradient lowers its loss: for the policy gradient that
    means raising Σ adv·log π, for PPO with zero advantages raising the entropy, for the
    critic moving V towards y, for the score net lowering the score-matching loss."""
    rng = np.random.default_rng(6)
    p = nets.init_actor(1, 1, rng, dtype=np.float64, xp=np)
    x, a, adv = rng.normal(size=(32, 1)), rng.normal(size=(32, 1)), rng.normal(size=32)
    _, g = nets.actor_loss_and_grad(p, x, a, adv)
    q = _descend(p, g, 1e-3)
    assert np.sum(adv * nets.actor_log_prob(q, x, a)) > np.sum(adv * nets.actor_log_prob(p, x, a))
    _, g = nets.ppo_loss_and_grad(p, x, a, np.zeros(32), nets.actor_log_prob(p, x, a), 0.2, 0.01)
    q = _descend(p, g, 1e-1)
    assert nets.actor_entropy(q, x).mean() > nets.actor_entropy(p, x).mean()
    pc = nets.init_critic(1, rng, dtype=np.float64, xp=np)
    y = rng.normal(size=32)
    _, g = nets.critic_loss_and_grad(pc, x, y)
    qc = _descend(pc, g, 1e-2)
    assert np.mean((y - nets.critic_forward(qc, x)) ** 2) < np.mean((y - nets.critic_forward(pc, x)) ** 2)
    ps = nets.init_score(1, rng, dtype=np.float64, xp=np)
    loss0, g = nets.score_loss_and_grad(ps, x)
    assert nets.score_loss_and_grad(_descend(ps, g, 1e-3), x)[0] < loss0


def test_every_loss_keeps_float32():
    """float32 networks and states give float32 losses and gradients, even when the
    advantages, targets or old log-probs come in float64 and clip is a NumPy float64."""
    rng = np.random.default_rng(8)
    pa, pc, ps = (nets.init_actor(2, 1, rng, xp=np), nets.init_critic(2, rng, xp=np),
                  nets.init_score(2, rng, xp=np))
    x = rng.normal(size=(6, 2)).astype(np.float32)
    a = rng.normal(size=(6, 1)).astype(np.float32)
    adv, y, z = rng.normal(size=6), rng.normal(size=6), rng.normal(size=(6, 2)).astype(np.float32)
    results = [nets.actor_loss_and_grad(pa, x, a, adv),
               nets.ppo_loss_and_grad(pa, x, a, adv, rng.normal(size=6), np.float64(0.2), np.float64(0.01)),
               nets.critic_loss_and_grad(pc, x, y),
               nets.score_loss_and_grad(ps, x), nets.score_loss_and_grad(ps, x, z)]
    for loss, grads in results:
        assert loss.dtype == np.float32
        assert all(g.dtype == np.float32 for g in grads.values())
    assert nets.actor_sample(pa, x, rng).dtype == np.float32
    assert nets.critic_forward(pc, x).dtype == np.float32


def test_ppo_survives_a_huge_log_ratio_in_float32():
    rng = np.random.default_rng(9)
    p = nets.init_actor(1, 1, rng, xp=np)
    x, a = np.zeros((2, 1), np.float32), np.zeros((2, 1), np.float32)
    logp_old = nets.actor_log_prob(p, x, a) - np.float32(100.0)  # ρ = e^100 without the cap
    loss, grads = nets.ppo_loss_and_grad(p, x, a, np.array([0.0, -1.0], np.float32), logp_old, 0.2, 0.0)
    assert np.isfinite(loss) and all(np.all(np.isfinite(g)) for g in grads.values())
