"""mfcg: the linear-quadratic MFCG benchmark, its closed form, and the Langevin sampler.

The problem (paper §6.1, with σ and the typos fixed as in BENCHMARK_NOTES §1):

    dX = α dt + σ dW,   running cost per coordinate
    f(x, m, m̃, α) = ½α² + c1(x − c2 m)² + c3(x − c4)² + c̃1(x − c̃2 m̃)² + c̃5 m̃²

where m is the mean of the global law (the competitive, exogenous population) and m̃ the
mean of the local law (the agent's own cooperative group). Time is discretised by
Euler–Maruyama with step Δt; the reward is −f Δt and the discount γ = e^{−βΔt}.
"""
import math
from dataclasses import dataclass, field

import numpy as np

from autograd_lite import check_array, to_numpy, xp_of


# ---------------------------------------------------------------------------------------
# The LQ problem
# ---------------------------------------------------------------------------------------

@dataclass(frozen=True)
class LQProblem:
    """The isotropic LQ benchmark in `dim` dimensions (every coordinate is the same 1-d
    problem). Defaults are the paper's coefficients with σ = 0.5 and Δt = 0.01."""
    c1: float = 0.5
    c2: float = 1.5
    c3: float = 0.5
    c4: float = 0.25
    c1_tilde: float = 0.3
    c2_tilde: float = 1.25
    c5_tilde: float = 0.25
    beta: float = 1.0
    sigma: float = 0.5
    dt: float = 0.01
    dim: int = 1

    def __post_init__(self):
        checks = [
            (self.beta > 0, f"beta must be > 0, got {self.beta}"),
            (self.sigma >= 0, f"sigma must be >= 0, got {self.sigma}"),
            (self.dt > 0, f"dt must be > 0, got {self.dt}"),
            (isinstance(self.dim, (int, np.integer)) and self.dim >= 1,
             f"dim must be an integer >= 1, got {self.dim!r}"),
            (self.K > 0, f"K = c1 + c3 + c1_tilde must be > 0 for the closed form, got {self.K}"),
            (self.D != 0, "D = c1(1 - c2) + c1_tilde(1 - c2_tilde)^2 + c3 + c5_tilde must be "
                          "nonzero for the closed form, got 0"),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(message)

    @property
    def K(self):
        """K = c1 + c3 + c̃1, the coefficient of x² in f: the control's stiffness."""
        return self.c1 + self.c3 + self.c1_tilde

    @property
    def D(self):
        """D = c1(1 − c2) + c̃1(1 − c̃2)² + c3 + c̃5, so that m* = c3 c4 / D.

        The global term is not squared: the global mean is exogenous to the group, while the
        local mean is the group's own (BENCHMARK_NOTES §2)."""
        return (self.c1 * (1 - self.c2) + self.c1_tilde * (1 - self.c2_tilde) ** 2
                + self.c3 + self.c5_tilde)

    @property
    def discount(self):
        """γ = e^{−βΔt} (the paper's Algorithm 4 header writes e^{+βΔt}: a typo)."""
        return math.exp(-self.beta * self.dt)

    def _check_batch(self, name, a):
        check_array(name, a, 2, (None, self.dim))

    def running_cost(self, x, m, m_tilde, a):
        """f(x, m, m̃, a) summed over coordinates.  x, a (N, d); m, m̃ scalars or (d,) → (N,)."""
        self._check_batch("x", x)
        self._check_batch("a", a)
        per_coord = (0.5 * a * a
                     + self.c1 * (x - self.c2 * m) ** 2
                     + self.c3 * (x - self.c4) ** 2
                     + self.c1_tilde * (x - self.c2_tilde * m_tilde) ** 2
                     + self.c5_tilde * m_tilde * m_tilde)
        return per_coord.sum(axis=1)

    def dcost_dm_tilde(self, x, m_tilde):
        """∂f/∂m̃ per coordinate: −2 c̃1 c̃2 (x − c̃2 m̃) + 2 c̃5 m̃.  x (N, d) → (N, d)."""
        self._check_batch("x", x)
        return -2.0 * self.c1_tilde * self.c2_tilde * (x - self.c2_tilde * m_tilde) \
            + 2.0 * self.c5_tilde * m_tilde

    def reward(self, x, m, m_tilde, a):
        """r = −f(x, m, m̃, a) Δt, shape (N,)."""
        return -self.dt * self.running_cost(x, m, m_tilde, a)

    def step(self, x, a, rng):
        """Euler–Maruyama: X' = X + a Δt + σ √Δt z, z ~ N(0, I) drawn with `rng`.

        (The paper's Algorithm 1 line 11 drops the leading X: a typo.)"""
        self._check_batch("x", x)
        self._check_batch("a", a)
        z = rng.standard_normal(x.shape, dtype=x.dtype)
        return x + a * self.dt + (self.sigma * math.sqrt(self.dt)) * z

    def solution(self):
        """The closed-form MFCG solution of this problem (continuous time)."""
        return LQSolution.of(self)


# ---------------------------------------------------------------------------------------
# The closed form
# ---------------------------------------------------------------------------------------

@dataclass(frozen=True)
class LQSolution:
    """Closed-form MFCG equilibrium of an LQProblem, per coordinate (BENCHMARK_NOTES §2).

        Γ2 = (−β + √(β² + 8K)) / 4,   m* = c3 c4 / D,   Γ1 = −2 Γ2 m*
        α̂(x) = −(2 Γ2 x + Γ1) = −2 Γ2 (x − m*),   limiting law N(m*, σ² / (4 Γ2))

    value(x) is the expected discounted cost of α̂ with both means frozen at m*, i.e. what a
    critic learns (negated):  v(x) = Γ2 x² + Γ1ᵛ x + Γ0ᵛ with
        Γ1ᵛ = −2[(c1 c2 + c̃1 c̃2) m* + c3 c4] / (β + 2 Γ2)
        β Γ0ᵛ = (c1 c2² + c̃1 c̃2² + c̃5) m*² + c3 c4² + σ² Γ2 + ½ Γ1² − Γ1 Γ1ᵛ
    value_paper(x) = Γ2 x² + Γ1 x + Γ0 is the paper's appendix formula, which solves the
    mean-field-control HJB instead; it is kept only to show the difference.
    mean_mfg = c3 c4 / (K − c1 c2 − c̃1 c̃2) is the non-cooperative (pure MFG) equilibrium
    mean a learner reaches when it ignores its own effect on m̃ (nan where undefined).
    """
    problem: LQProblem = field(repr=False)
    gamma2: float
    gamma1: float
    mean: float
    std: float
    mean_mfg: float
    gamma1_value: float
    gamma0_value: float
    gamma0_paper: float

    @classmethod
    def of(cls, pb):
        beta, sigma = pb.beta, pb.sigma
        gamma2 = (-beta + math.sqrt(beta * beta + 8.0 * pb.K)) / 4.0
        mean = pb.c3 * pb.c4 / pb.D
        gamma1 = -2.0 * gamma2 * mean
        denom_mfg = pb.K - pb.c1 * pb.c2 - pb.c1_tilde * pb.c2_tilde
        mean_mfg = pb.c3 * pb.c4 / denom_mfg if denom_mfg != 0 else math.nan
        quad_m = (pb.c1 * pb.c2 ** 2 + pb.c1_tilde * pb.c2_tilde ** 2 + pb.c5_tilde) * mean ** 2
        g1v = -2.0 * ((pb.c1 * pb.c2 + pb.c1_tilde * pb.c2_tilde) * mean + pb.c3 * pb.c4) \
            / (beta + 2.0 * gamma2)
        g0v = (quad_m + pb.c3 * pb.c4 ** 2 + sigma ** 2 * gamma2
               + 0.5 * gamma1 ** 2 - gamma1 * g1v) / beta
        g0p = (quad_m + sigma ** 2 * gamma2 - 0.5 * gamma1 ** 2 + pb.c3 * pb.c4 ** 2) / beta
        return cls(problem=pb, gamma2=gamma2, gamma1=gamma1, mean=mean,
                   std=sigma / (2.0 * math.sqrt(gamma2)), mean_mfg=mean_mfg,
                   gamma1_value=g1v, gamma0_value=g0v, gamma0_paper=g0p)

    def _x(self, x):
        check_array("x", x, 2, (None, self.problem.dim))
        return x

    def control(self, x):
        """α̂(x) = −2 Γ2 (x − m*), per coordinate.  x (N, d) → (N, d)."""
        return -2.0 * self.gamma2 * (self._x(x) - self.mean)

    def control_mfg(self, x):
        """The non-cooperative equilibrium control −2 Γ2 (x − m_mfg).  (N, d) → (N, d)."""
        return -2.0 * self.gamma2 * (self._x(x) - self.mean_mfg)

    def value(self, x):
        """Expected discounted cost of α̂ from x, means frozen at m*: Σ_coord v(xᵢ). → (N,)"""
        x = self._x(x)
        return (self.gamma2 * x * x + self.gamma1_value * x + self.gamma0_value).sum(axis=1)

    def value_paper(self, x):
        """The paper's appendix formula Σ_coord Γ2 xᵢ² + Γ1 xᵢ + Γ0 ("as published"). → (N,)"""
        x = self._x(x)
        return (self.gamma2 * x * x + self.gamma1 * x + self.gamma0_paper).sum(axis=1)

    def density(self, x):
        """Density of the limiting law N(m*, std²)^{⊗d} at x (N, d) → (N,)."""
        x = self._x(x)
        xp = xp_of(x)
        u = (x - self.mean) / self.std
        return xp.exp(-0.5 * (u * u).sum(axis=1)) / (math.sqrt(2 * math.pi) * self.std) ** x.shape[1]


# ---------------------------------------------------------------------------------------
# Langevin sampler and density read-out
# ---------------------------------------------------------------------------------------

def langevin(score_fn, pool, n_steps, eps, rng):
    """Unadjusted Langevin dynamics from `pool` (k, d); returns the new pool (k, d).

        x ← x + (ε/2) s(x) + √ε z,   z ~ N(0, I),   repeated n_steps times

    Chains are persistent: pass the returned pool back in to continue them. On a Gaussian
    target of variance v the chain's stationary variance is v / (1 − ε/(4v)), not v: the
    sampler's own bias (BENCHMARK_NOTES §4). Raises ValueError if the pool is not finite,
    before or after the iterations (a diverging score network shows up here).
    """
    check_array("pool", pool, 2)
    xp = xp_of(pool)
    if not bool(xp.isfinite(pool).all()):
        raise ValueError("langevin: the starting pool contains non-finite values")
    half, root = 0.5 * eps, math.sqrt(eps)
    x = pool
    for _ in range(n_steps):
        x = x + half * score_fn(x) + root * rng.standard_normal(x.shape, dtype=x.dtype)
    if not bool(xp.isfinite(x).all()):
        raise ValueError(f"langevin: the pool became non-finite within {n_steps} steps "
                         f"(eps={eps}); the score function diverges")
    return x


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
