"""The LQ benchmark's closed form, checked independently of its own formulas:
Monte Carlo of the discounted cost, simulation of the population, exact discrete-time
moments, and direct minimisation over affine feedbacks; plus the Langevin sampler and the
density read-out."""
import math
import os

import numpy as np
import pytest
from hypothesis import assume, example, given, settings
from hypothesis import strategies as st
from scipy import integrate, optimize

from mfcg import LQProblem, density_from_score, langevin

PB = LQProblem()
SOL = PB.solution()
XS = np.array([-1.0, 0.0, 0.5, 1.0])


# --- check values (docs/benchmark.md §2) -----------------------------------------------------

def test_check_values_to_1e9():
    assert SOL.gamma2 == pytest.approx(0.5940971508, abs=1e-9)
    assert SOL.mean == pytest.approx(0.2409638554, abs=1e-9)
    assert SOL.std == pytest.approx(0.3243480370, abs=1e-9)
    assert SOL.gamma1_value == pytest.approx(-0.3620193482, abs=1e-9)
    assert SOL.gamma0_value == pytest.approx(0.2241658188, abs=1e-9)
    assert SOL.mean_mfg == pytest.approx(0.7142857, abs=1e-7)
    np.testing.assert_allclose(SOL.control(np.array([[0.0], [1.0]]))[:, 0],
                               [0.2863118799, 0.2863118799 - 1.1881943016], atol=1e-9)
    np.testing.assert_allclose(SOL.value(XS[:, None]),
                               [1.1802823177, 0.2241658188, 0.1916804324, 0.4562436214], atol=1e-9)
    np.testing.assert_allclose(SOL.value_paper(XS[:, None]),
                               [1.1262507971, 0.2458417663, 0.2512101141, 0.5536270372], atol=1e-9)


def test_d_dimensional_solution_splits_by_coordinate():
    pb3 = LQProblem(dim=3)
    sol3 = pb3.solution()
    x = np.array([[-1.0, 0.0, 0.5], [1.0, 1.0, -0.2]])
    np.testing.assert_allclose(sol3.value(x), sum(SOL.value(x[:, i:i + 1]) for i in range(3)))
    np.testing.assert_allclose(sol3.control(x), np.hstack([SOL.control(x[:, i:i + 1]) for i in range(3)]))
    np.testing.assert_allclose(sol3.density(x), np.prod([SOL.density(x[:, i:i + 1]) for i in range(3)], axis=0))
    assert sol3.density(x).shape == (2,)


def test_density_is_the_normal_pdf():
    from scipy.stats import norm
    x = np.linspace(-1, 1.5, 7)[:, None]
    np.testing.assert_allclose(SOL.density(x), norm.pdf(x[:, 0], SOL.mean, SOL.std), rtol=1e-12)


# --- the environment -----------------------------------------------------------------------

def test_running_cost_reward_and_step_by_hand():
    x, a = np.array([[0.4]]), np.array([[-0.2]])
    m, mt = 0.3, 0.1
    f = 0.5 * 0.04 + 0.5 * (0.4 - 0.45) ** 2 + 0.5 * (0.4 - 0.25) ** 2 \
        + 0.3 * (0.4 - 0.125) ** 2 + 0.25 * 0.01
    assert PB.running_cost(x, m, mt, a)[0] == pytest.approx(f, rel=1e-14)
    assert PB.reward(x, m, mt, a)[0] == pytest.approx(-f * 0.01, rel=1e-14)
    assert PB.discount == pytest.approx(math.exp(-0.01))
    z = np.random.default_rng(5).standard_normal((1, 1))
    nxt = PB.step(x, a, np.random.default_rng(5))
    assert nxt[0, 0] == pytest.approx(0.4 - 0.2 * 0.01 + 0.5 * 0.1 * z[0, 0], rel=1e-14)
    pb2 = LQProblem(dim=2)
    x2, a2 = np.array([[0.4, -1.0]]), np.array([[-0.2, 0.7]])
    one = lambda i: PB.running_cost(x2[:, i:i + 1], m, mt, a2[:, i:i + 1])  # noqa: E731
    assert pb2.running_cost(x2, m, mt, a2)[0] == pytest.approx(one(0)[0] + one(1)[0])


def test_dcost_dm_tilde_matches_finite_differences():
    rng = np.random.default_rng(0)
    x, a = rng.normal(size=(5, 1)), rng.normal(size=(5, 1))
    h, mt = 1e-6, 0.37
    fd = (PB.running_cost(x, 0.2, mt + h, a) - PB.running_cost(x, 0.2, mt - h, a)) / (2 * h)
    np.testing.assert_allclose(PB.dcost_dm_tilde(x, mt)[:, 0], fd, rtol=1e-7)


@pytest.mark.parametrize("kwargs, match", [
    ({"beta": 0.0}, "beta must be > 0"),
    ({"sigma": -0.1}, "sigma must be >= 0"),
    ({"dt": 0.0}, "dt must be > 0"),
    ({"dim": 0}, "dim must be an integer >= 1"),
    ({"c1": -1.0, "c3": 0.5, "c1_tilde": 0.3}, "K = c1 \\+ c3 \\+ c1_tilde must be > 0"),
    ({"c1": 1.0, "c2": 2.75, "c1_tilde": 0.0, "c3": 1.0, "c5_tilde": 0.75}, "D = .* must be nonzero"),
])
def test_invalid_problems_are_rejected(kwargs, match):
    with pytest.raises(ValueError, match=match):
        LQProblem(**kwargs)


def test_wrong_state_shape_is_rejected():
    with pytest.raises(ValueError, match=r"x must have shape \(N, 1\), got \(3,\)"):
        PB.running_cost(np.zeros(3), 0.0, 0.0, np.zeros((3, 1)))


# --- independent checks of the value function -------------------------------------------------

def discrete_value_exact(pb, slope, intercept, x0, m, n_steps):
    """E Σₙ γⁿ f(Xₙ, m, m, αₙ) Δt for α(x) = −(slope x + intercept) under Euler–Maruyama,
    from X₀ = x0, computed exactly from the mean/variance recursion (no sampling):
        μₙ₊₁ = (1 − slope Δt) μₙ − intercept Δt,   Vₙ₊₁ = (1 − slope Δt)² Vₙ + σ² Δt."""
    dt, gam = pb.dt, pb.discount
    mu, var, total = np.asarray(x0, dtype=np.float64), np.zeros_like(x0, dtype=np.float64), 0.0
    sq = lambda c: var + (mu - c) ** 2  # noqa: E731   E[(X − c)²]
    for n in range(n_steps):
        f = (0.5 * (slope ** 2 * var + (slope * mu + intercept) ** 2) + pb.c1 * sq(pb.c2 * m)
             + pb.c3 * sq(pb.c4) + pb.c1_tilde * sq(pb.c2_tilde * m) + pb.c5_tilde * m * m)
        total = total + gam ** n * f * dt
        mu, var = (1 - slope * dt) * mu - intercept * dt, (1 - slope * dt) ** 2 * var + pb.sigma ** 2 * dt
    return total


def test_monte_carlo_cost_of_the_optimal_control_is_value_not_value_paper():
    """Simulate α̂ with means frozen at m*: the discounted cost agrees with value(x) within
    4 standard errors plus the Δt = 0.01 discretisation gap, and not with value_paper(x)."""
    rng = np.random.default_rng(2024)
    n_paths, n_steps = 20000, 1500      # γ^1500 = e^{-15}: the tail beyond is < 1e-6
    x = np.repeat(XS, n_paths)[:, None]
    cost = np.zeros(x.shape[0])
    for n in range(n_steps):
        a = SOL.control(x)
        cost += PB.discount ** n * PB.running_cost(x, SOL.mean, SOL.mean, a) * PB.dt
        x = PB.step(x, a, rng)
    cost = cost.reshape(len(XS), n_paths)
    mc, se = cost.mean(axis=1), cost.std(axis=1, ddof=1) / math.sqrt(n_paths)
    slope, intercept = 2 * SOL.gamma2, SOL.gamma1
    exact_discrete = discrete_value_exact(PB, slope, intercept, XS, SOL.mean, n_steps)
    gap = np.abs(exact_discrete - SOL.value(XS[:, None]))
    # the simulation itself is right: it matches the exact discrete-time expectation
    assert np.all(np.abs(mc - exact_discrete) < 4 * se), (mc, exact_discrete, se)
    # the discretisation gap is the known O(Δt) one, about 1 % of the value
    assert np.all(gap < 0.02 * SOL.value(XS[:, None]))
    assert np.all(np.abs(mc - SOL.value(XS[:, None])) < 4 * se + gap)
    # the appendix formula lies outside that agreement band, by more than twice its width
    # at every x (measured: 2.5x at x = -1, 3x at x = 0, 6x at x = 0.5, 4x at x = 1)
    assert np.all(np.abs(mc - SOL.value_paper(XS[:, None])) > 2 * (4 * se + gap))


def test_population_under_the_optimal_control_reaches_the_limiting_law():
    """Agents from N(0, 1) under α̂ settle at mean m* and variance σ²/(4Γ2) (continuous
    time); the Euler–Maruyama chain's own stationary variance σ²Δt/(1 − (1 − 2Γ2Δt)²) is
    0.6 % larger, and the sample matches that within sampling error."""
    rng = np.random.default_rng(11)
    n = 200000
    x = rng.standard_normal((n, 1))
    for _ in range(1000):                # e^{-2Γ2·10} ≈ 7e-6 of the initial offset remains
        x = PB.step(x, SOL.control(x), rng)
    mean, var = x.mean(), x.var(ddof=1)
    var_cont = SOL.std ** 2
    rho = 1 - 2 * SOL.gamma2 * PB.dt
    var_disc = PB.sigma ** 2 * PB.dt / (1 - rho ** 2)
    assert abs(mean - SOL.mean) < 5 * math.sqrt(var / n)
    assert abs(var - var_disc) < 5 * var_disc * math.sqrt(2 / n)
    assert abs(var_disc / var_cont - 1) < 0.015


# --- the closed form minimises the exact cost among affine feedbacks ----------------------------

def gaussian_moment_cost(pb, slope, intercept, m, correction, mu0=0.3, s0=0.8):
    """Continuous-time discounted cost E ∫ e^{−βt} [f(Xₜ, m, m, αₜ) + correction·Xₜ] dt for
    α(x) = −(slope x + intercept), X₀ ~ N(mu0, s0²), both means frozen at m. The law of Xₜ is
    Gaussian (Ornstein–Uhlenbeck): mean mₐ + (mu0 − mₐ)e^{−slope t}, mₐ = −intercept/slope,
    variance v∞ + (s0² − v∞)e^{−2 slope t}, v∞ = σ²/(2 slope). Integrated with quad."""
    if slope <= 1e-3:  # unstable or nearly so: no stationary law; the optimum has slope 2Γ2 > 0
        return math.inf
    m_a, v_inf = -intercept / slope, pb.sigma ** 2 / (2 * slope)

    def expected_cost(t):
        mu = m_a + (mu0 - m_a) * math.exp(-slope * t)
        var = v_inf + (s0 ** 2 - v_inf) * math.exp(-2 * slope * t)
        sq = lambda c: var + (mu - c) ** 2  # noqa: E731
        return (0.5 * (slope ** 2 * var + (slope * mu + intercept) ** 2) + pb.c1 * sq(pb.c2 * m)
                + pb.c3 * sq(pb.c4) + pb.c1_tilde * sq(pb.c2_tilde * m) + pb.c5_tilde * m * m
                + correction * mu) * math.exp(-pb.beta * t)

    return integrate.quad(expected_cost, 0, np.inf, epsabs=1e-13, epsrel=1e-12, limit=200)[0]


def _argmin_affine(pb, m, correction, start):
    """Nelder–Mead stops when the simplex is within xatol in θ *and* fatol in cost. The cost
    comes from quad and is of order 1–10, so its last bits are rounding noise of about 1e-15
    and a fatol at that level may never be met (it once ran out of iterations at the
    optimum); 1e-12 is above the noise, and xatol = 1e-9 still fixes the precision."""
    res = optimize.minimize(lambda th: gaussian_moment_cost(pb, th[0], th[1], m, correction),
                            start, method="Nelder-Mead",
                            options={"xatol": 1e-9, "fatol": 1e-12, "maxiter": 4000})
    assert res.success, res.message
    return res.x


coefficient_sets = st.fixed_dictionaries({
    "c1": st.floats(0.0, 2.0), "c2": st.floats(-2.0, 2.0), "c3": st.floats(0.1, 2.0),
    "c4": st.floats(-1.0, 1.0), "c1_tilde": st.floats(0.0, 2.0), "c2_tilde": st.floats(-2.0, 2.0),
    "c5_tilde": st.floats(0.0, 1.0), "beta": st.floats(0.2, 3.0), "sigma": st.floats(0.1, 1.0)})


@settings(max_examples=int(os.environ.get("MFCG_AFFINE_EXAMPLES", 12)))
@given(coefficient_sets)
@example({"c1": 1.444493304055768, "c2": 1.671037287730294, "c3": 0.5,  # ran out of iterations
          "c4": -0.7570302466436782, "c1_tilde": 0.3930150930584905,  # when fatol was 1e-15
          "c2_tilde": 0.10219054188064058, "c5_tilde": 0.359375, "beta": 1.1359117070000642,
          "sigma": 0.96875})
def test_closed_form_minimises_the_exact_cost_among_affine_feedbacks(coefs):
    """Two statements, on random problems where the closed form exists:
    1. with the means at m* and the plain cost, the best affine feedback is
       −(2Γ2 x + Γ1ᵛ): the slope of α̂ and the slope/intercept of value(x), i.e. −v'(x);
    2. adding the mean-field correction x·E[∂f/∂m̃] (means at m*), the best affine feedback
       is α̂ itself, whose stationary mean is m*: the cooperative fixed point, which checks
       D (the unsquared global term) and Γ1 = −2Γ2 m*."""
    c = coefs
    D = c["c1"] * (1 - c["c2"]) + c["c1_tilde"] * (1 - c["c2_tilde"]) ** 2 + c["c3"] + c["c5_tilde"]
    assume(abs(D) > 0.2 and abs(c["c3"] * c["c4"] / D) < 5)  # D = 0 is rejected, tested above
    pb = LQProblem(**coefs)
    sol = pb.solution()
    start = np.array([1.0, 0.0])
    slope, intercept = _argmin_affine(pb, sol.mean, 0.0, start)
    assert slope == pytest.approx(2 * sol.gamma2, rel=1e-5, abs=1e-6)
    assert intercept == pytest.approx(sol.gamma1_value, rel=1e-5, abs=1e-6)
    corr = float(pb.dcost_dm_tilde(np.array([[sol.mean]]), sol.mean)[0, 0])  # E[x'] = m*
    slope, intercept = _argmin_affine(pb, sol.mean, corr, start)
    assert slope == pytest.approx(2 * sol.gamma2, rel=1e-5, abs=1e-6)
    assert intercept == pytest.approx(sol.gamma1, rel=1e-5, abs=1e-6)


def test_exact_cost_of_the_optimal_control_is_the_mean_of_value():
    """From X₀ ~ N(mu0, s0²), the continuous-time cost of α̂ equals E[value(X₀)]."""
    for mu0, s0 in [(0.3, 0.8), (-1.0, 0.1), (2.0, 1.5)]:
        cost = gaussian_moment_cost(PB, 2 * SOL.gamma2, SOL.gamma1, SOL.mean, 0.0, mu0, s0)
        expect = SOL.gamma2 * (mu0 ** 2 + s0 ** 2) + SOL.gamma1_value * mu0 + SOL.gamma0_value
        assert cost == pytest.approx(expect, rel=1e-9)


def test_mfg_mean_is_the_fixed_point_of_the_plain_best_response():
    """Means frozen at m_mfg and the plain cost: the best affine feedback's stationary mean
    −intercept/slope is m_mfg itself (the non-cooperative equilibrium), and not m*."""
    slope, intercept = _argmin_affine(PB, SOL.mean_mfg, 0.0, np.array([1.0, 0.0]))
    assert -intercept / slope == pytest.approx(SOL.mean_mfg, rel=1e-6)
    np.testing.assert_allclose(SOL.control_mfg(np.array([[0.0]]))[0, 0], -intercept, rtol=1e-6)


# --- Langevin sampler -------------------------------------------------------------------------

@pytest.mark.parametrize("v", [0.1052, 1.0])
def test_langevin_reaches_the_biased_stationary_law(v):
    """With the exact score of N(μ, v) the chains reach mean μ and variance v/(1 − ε/(4v)),
    the unadjusted sampler's bias, which at v = 0.1052 is +13.5 % and clearly not v."""
    mu, eps, k = 0.7, 0.05, 40000
    rng = np.random.default_rng(3)
    pool = rng.standard_normal((k, 1))
    out = langevin(lambda x: -(x - mu) / v, pool, rng.standard_normal((600, k, 1)), eps)
    assert out.shape == (k, 1) and not np.shares_memory(out, pool)
    mean, var = out.mean(), out.var(ddof=1)
    var_ula = v / (1 - eps / (4 * v))
    assert abs(mean - mu) < 5 * math.sqrt(var / k)
    assert abs(var - var_ula) < 5 * var_ula * math.sqrt(2 / k)
    if v < 0.2:
        assert abs(var - v) > 10 * var_ula * math.sqrt(2 / k)


def test_langevin_continues_persistent_chains():
    """Two calls of n steps equal one call of 2n steps with the same normals."""
    score = lambda x: -x  # noqa: E731
    pool = np.random.default_rng(0).standard_normal((50, 2))
    noise = np.random.default_rng(1).standard_normal((20, 50, 2))
    one = langevin(score, pool, noise, 0.05)
    two = langevin(score, langevin(score, pool, noise[:10], 0.05), noise[10:], 0.05)
    np.testing.assert_array_equal(one, two)


def test_langevin_rejects_non_finite_pools():
    pool = np.zeros((4, 1))
    pool[2, 0] = np.nan
    with pytest.raises(ValueError, match="starting pool contains non-finite"):
        langevin(lambda x: -x, pool, np.random.default_rng(0).standard_normal((5, 4, 1)), 0.05)
    with pytest.raises(ValueError, match="became non-finite"), np.errstate(over="ignore", invalid="ignore"):
        langevin(lambda x: x ** 3, np.full((4, 1), 10.0), np.random.default_rng(0).standard_normal((50, 4, 1)), 0.05)
    with pytest.raises(ValueError, match=r"noise must have shape \(n_steps, 4, 1\)"):
        langevin(lambda x: -x, np.zeros((4, 1)), np.zeros((5, 3, 1)), 0.05)


# --- density read-out ---------------------------------------------------------------------------

def test_density_read_out_of_a_gaussian_score():
    out = density_from_score(lambda x: -(x - SOL.mean) / SOL.std ** 2, -3, 3)
    assert out["mean"] == pytest.approx(SOL.mean, abs=1e-6)
    assert out["std"] == pytest.approx(SOL.std, rel=1e-5)
    np.testing.assert_allclose(out["density"], SOL.density(out["grid"][:, None]), rtol=1e-4, atol=1e-8)


def test_density_read_out_of_a_mixture_score():
    """An asymmetric two-component mixture: score and moments known in closed form."""
    w, (m1, s1), (m2, s2) = 0.3, (-1.0, 0.5), (1.5, 0.8)
    pdf = lambda x, m, s: np.exp(-0.5 * ((x - m) / s) ** 2) / s  # noqa: E731

    def score(x):
        p1, p2 = w * pdf(x, m1, s1), (1 - w) * pdf(x, m2, s2)
        return (p1 * -(x - m1) / s1 ** 2 + p2 * -(x - m2) / s2 ** 2) / (p1 + p2)

    out = density_from_score(score, -6, 7, n=4001)
    mean = w * m1 + (1 - w) * m2
    var = w * (s1 ** 2 + m1 ** 2) + (1 - w) * (s2 ** 2 + m2 ** 2) - mean ** 2
    assert out["mean"] == pytest.approx(mean, abs=1e-5)
    assert out["std"] == pytest.approx(math.sqrt(var), rel=1e-5)


def test_density_read_out_rejects_bad_grids():
    with pytest.raises(ValueError, match="hi > lo"):
        density_from_score(lambda x: -x, 1.0, -1.0)
