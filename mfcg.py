"""mfcg: the linear-quadratic MFCG benchmark, its closed form, and the four learners.

The problem (paper §6.1, with σ and the typos fixed as in docs/benchmark.md §1):

    dX = α dt + σ dW,   running cost per coordinate
    f(x, m, m̃, α) = ½α² + c1(x − c2 m)² + c3(x − c4)² + c̃1(x − c̃2 m̃)² + c̃5 m̃²

where m is the mean of the global law (the competitive, exogenous population) and m̃ the
mean of the local law (the agent's own cooperative group). Time is discretised by
Euler–Maruyama with step Δt; the reward is −f Δt and the discount γ = e^{−βΔt}.

Read in order: the problem → its closed form → Config and the presets → the training
state → the step functions (score update, Langevin refresh, acting, actor–critic and PPO
updates) → the four trainers → evaluation against the closed form. Two modules hold what
is not the algorithm: fastpaths.py the same arithmetic, faster (Config.readable turns it
off), and rundir.py a run's bookkeeping (settings checks, checkpoints, the loop, read-outs).
"""
import math
from dataclasses import asdict, dataclass, field, replace
from functools import cached_property
from typing import NamedTuple

import numpy as np

import nets
from autograd_lite import (adam_init, adam_update, check_array, clip_grad_norm, get_xp, lr_factor,
                           to_numpy, xp_of)
from fastpaths import (FlatParams, adam_step, chunk_mean, chunk_rows, concurrently, gae_by_matmul,
                       in_chunks, langevin_score_net, make_rng)
from rundir import Loop, check_config, check_problem, check_rotated_problem, load_checkpoint as read_checkpoint


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
        check_problem(self)   # every field's type and range, and a closed form (rundir)

    @property
    def K(self):
        """K = c1 + c3 + c̃1, the coefficient of x² in f: the control's stiffness."""
        return self.c1 + self.c3 + self.c1_tilde

    @property
    def D(self):
        """D = c1(1 − c2) + c̃1(1 − c̃2)² + c3 + c̃5, so that m* = c3 c4 / D.

        The global term is not squared: the global mean is exogenous to the group, while the
        local mean is the group's own (docs/benchmark.md §2)."""
        return (self.c1 * (1 - self.c2) + self.c1_tilde * (1 - self.c2_tilde) ** 2
                + self.c3 + self.c5_tilde)

    @property
    def lions(self):
        """L = c̃5 − c̃1c̃2(1 − c̃2): E[∂f/∂m̃] = 2L·m̃ when the group's mean is m̃, so the
        correction's first-order condition moves the agent's rest point by L·m̃ (half of it)."""
        return self.c5_tilde - self.c1_tilde * self.c2_tilde * (1.0 - self.c2_tilde)

    @property
    def discount(self):
        """γ = e^{−βΔt} (the paper's Algorithm 4 header writes e^{+βΔt}: a typo)."""
        return math.exp(-self.beta * self.dt)

    def running_cost(self, x, m, m_tilde, a):
        """f(x, m, m̃, a) summed over coordinates.  x, a (N, d); m, m̃ scalars or (d,) → (N,)."""
        check_array("x", x, 2, (None, self.dim))
        check_array("a", a, 2, (None, self.dim))
        per_coord = (0.5 * a * a
                     + self.c1 * (x - self.c2 * m) ** 2
                     + self.c3 * (x - self.c4) ** 2
                     + self.c1_tilde * (x - self.c2_tilde * m_tilde) ** 2
                     + self.c5_tilde * m_tilde * m_tilde)
        return per_coord.sum(axis=1)

    def dcost_dm_tilde(self, x, m_tilde):
        """∂f/∂m̃ per coordinate: −2 c̃1 c̃2 (x − c̃2 m̃) + 2 c̃5 m̃.  x (N, d) → (N, d)."""
        check_array("x", x, 2, (None, self.dim))
        return -2.0 * self.c1_tilde * self.c2_tilde * (x - self.c2_tilde * m_tilde) \
            + 2.0 * self.c5_tilde * m_tilde

    def reward(self, x, m, m_tilde, a):
        """r = −f(x, m, m̃, a) Δt, shape (N,)."""
        return -self.dt * self.running_cost(x, m, m_tilde, a)

    def dreward_da(self, a):
        """∂r/∂a = −a Δt, shape (N, d): f's only action term is ½|a|²."""
        return -self.dt * a

    def step(self, x, a, rng):
        """Euler–Maruyama: X' = X + a Δt + σ √Δt z, z ~ N(0, I) drawn with `rng`.

        (The paper's Algorithm 1 line 11 drops the leading X: a typo.)"""
        check_array("x", x, 2, (None, self.dim))
        check_array("a", a, 2, (None, self.dim))
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
    """Closed-form MFCG equilibrium of an LQProblem, per coordinate (docs/benchmark.md §2).

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

    def mean_own_influence(self, w, w_global=0.0):
        """Where a learner comes to rest when the fraction w of the group's term enters its
        return (docs/benchmark.md §3): its first-order condition at m = m̃ = μ is the Nash
        one plus w times half the Lions term x·2m̃(c̃5 − c̃1c̃2(1 − c̃2)), so
            μ(w) = c3c4 / (K − c1c2 − c̃1c̃2 + w(c̃5 − c̃1c̃2(1 − c̃2))),
        m_mfg at w = 0 and m* at w = 1. A single agent's global mean m is its own estimate
        too: with the fraction w_global of the global term, half its derivative in m,
        −c1c2(x − c2m), adds −w_global·c1c2(1 − c2) to the denominator."""
        pb = self.problem
        own_global = -pb.c1 * pb.c2 * (1.0 - pb.c2)
        return pb.c3 * pb.c4 / (pb.K - pb.c1 * pb.c2 - pb.c1_tilde * pb.c2_tilde + w * pb.lions
                                + w_global * own_global)

    def value(self, x):
        """Expected discounted cost of α̂ from x, means frozen at m*: Σ_coord v(xᵢ). → (N,)"""
        x = self._x(x)
        return (self.gamma2 * x * x + self.gamma1_value * x + self.gamma0_value).sum(axis=1)

    def value_paper(self, x):
        """The paper's appendix formula Σ_coord Γ2 xᵢ² + Γ1 xᵢ + Γ0 ("as published"). → (N,)"""
        x = self._x(x)
        return (self.gamma2 * x * x + self.gamma1 * x + self.gamma0_paper).sum(axis=1)

    def sample(self, z, nash=False):
        """Points of the limiting law N(m*, std²)^{⊗d} from standard normals z (N, d), or with
        `nash` of the Nash equilibrium's N(m_mfg, std²)^{⊗d}: the same draws shifted."""
        return (self.mean_mfg if nash else self.mean) + self.std * z

    def jacobian(self):
        """∂α̂/∂x, (d, d): −2Γ2·I."""
        return -2.0 * self.gamma2 * np.eye(self.problem.dim)

    def density(self, x):
        """Density of the limiting law N(m*, std²)^{⊗d} at x (N, d) → (N,)."""
        u = (self._x(x) - self.mean) / self.std
        return xp_of(x).exp(-0.5 * (u * u).sum(axis=1)) / (math.sqrt(2 * math.pi) * self.std) ** x.shape[1]


# ---------------------------------------------------------------------------------------
# A coupled benchmark with a closed form: different 1-d problems, rotated
# ---------------------------------------------------------------------------------------

@dataclass(frozen=True)
class RotatedLQProblem:
    """d different 1-d problems seen through a fixed rotation Q. In the coordinates
    y = Qᵀx each coordinate i is the 1-d problem coordinates[i], with its own coefficients
    and noise; the agents act and are seen in x, where the costs, the noise and the
    solution couple the coordinates. The problem decouples in y (Q is orthogonal: the
    control cost ½|a|² = ½|Qᵀa|², and dY = Qᵀa dt + diag(σ) dW), so its solution is the
    decoupled one rotated: m* = Q m*_y, α̂(x) = Q α̂_y(Qᵀx) (RotatedLQSolution). Row
    vectors throughout: y = x Q. Every coordinate shares β and Δt (one clock, one
    discount). `rotation` seeds Q; 0 keeps Q = I."""
    coordinates: tuple = (LQProblem(),)
    rotation: int = 1

    def __post_init__(self):
        coords = tuple(LQProblem(**c) if isinstance(c, dict) else c for c in self.coordinates)  # from JSON
        object.__setattr__(self, "coordinates", coords)
        object.__setattr__(self, "_arrays", {})   # device copies of Q and the coefficients (_array)
        check_rotated_problem(self, LQProblem)   # rundir

    @property
    def dim(self):
        return len(self.coordinates)

    @property
    def dt(self):
        return self.coordinates[0].dt

    @property
    def beta(self):
        return self.coordinates[0].beta

    @property
    def discount(self):
        return self.coordinates[0].discount

    @cached_property  # drawn once per problem, not at every step
    def rotation_matrix(self):
        """Q (d, d), orthogonal: the QR factor of a standard normal matrix drawn with
        `rotation` as seed, its columns' signs fixed so that R's diagonal is positive."""
        if self.rotation == 0:
            return np.eye(self.dim)
        q, r = np.linalg.qr(np.random.default_rng(self.rotation).standard_normal((self.dim, self.dim)))
        return q * np.sign(np.diag(r))

    def _array(self, name, like):
        """Q ("Q"), Qᵀ ("Qt") or coefficient `name` of every coordinate, (d,), on like's
        device and in its dtype: made once per device and dtype, not at every step."""
        xp = xp_of(like)
        key = (name, xp.__name__, str(like.dtype))
        if key not in self._arrays:
            q = self.rotation_matrix
            value = {"Q": q, "Qt": q.T}.get(name)
            self._arrays[key] = xp.asarray([getattr(c, name) for c in self.coordinates] if value is None else value,
                                           dtype=like.dtype)
        return self._arrays[key]

    def _to_y(self, v, like):
        """Row vectors (or a (d,) mean) from x to y: v Q."""
        return xp_of(like).asarray(v, dtype=like.dtype) @ self._array("Q", like)

    def _to_x(self, v):
        """Row vectors from y back to x: v Qᵀ."""
        return v @ self._array("Qt", v)

    def running_cost(self, x, m, m_tilde, a):
        """f summed over the coordinates of y: each coordinate i's 1-d cost at
        (y_i, (Qᵀm)_i, (Qᵀm̃)_i, (Qᵀa)_i).  x, a (N, d); m, m̃ (d,) → (N,)."""
        check_array("x", x, 2, (None, self.dim))
        check_array("a", a, 2, (None, self.dim))
        y, b, my, mty = (self._to_y(v, x) for v in (x, a, m, m_tilde))
        c = {k: self._array(k, x) for k in ("c1", "c2", "c3", "c4", "c1_tilde", "c2_tilde", "c5_tilde")}
        per_coord = (0.5 * b * b + c["c1"] * (y - c["c2"] * my) ** 2 + c["c3"] * (y - c["c4"]) ** 2
                     + c["c1_tilde"] * (y - c["c2_tilde"] * mty) ** 2 + c["c5_tilde"] * mty * mty)
        return per_coord.sum(axis=1)

    def dcost_dm_tilde(self, x, m_tilde):
        """∂f/∂m̃ (in x): Q times the 1-d problems' ∂f/∂m̃_y.  x (N, d), m̃ (d,) → (N, d)."""
        check_array("x", x, 2, (None, self.dim))
        y, mty = self._to_y(x, x), self._to_y(m_tilde, x)
        c1t, c2t, c5t = (self._array(k, x) for k in ("c1_tilde", "c2_tilde", "c5_tilde"))
        return self._to_x(-2.0 * c1t * c2t * (y - c2t * mty) + 2.0 * c5t * mty)

    def reward(self, x, m, m_tilde, a):
        """r = −f(x, m, m̃, a) Δt, shape (N,)."""
        return -self.dt * self.running_cost(x, m, m_tilde, a)

    def dreward_da(self, a):
        """∂r/∂a = −a Δt, shape (N, d): ½|Qᵀa|² = ½|a|², Q being a rotation."""
        return -self.dt * a

    def step(self, x, a, rng):
        """Euler–Maruyama in x: X' = X + a Δt + Q diag(σ) √Δt z, z ~ N(0, I)."""
        check_array("x", x, 2, (None, self.dim))
        check_array("a", a, 2, (None, self.dim))
        z = rng.standard_normal(x.shape, dtype=x.dtype)
        return x + a * self.dt + self._to_x(self._array("sigma", x) * math.sqrt(self.dt) * z)

    def solution(self):
        return RotatedLQSolution(self)


class RotatedLQSolution:
    """The closed form of a RotatedLQProblem: each coordinate's LQSolution in y, rotated
    into x. mean and mean_mfg are (d,) vectors in x; std the x coordinates' marginal stds
    (the law itself is N(Q m*_y, Q diag(std_y²) Qᵀ): use sample, not mean + std·z)."""

    def __init__(self, problem):
        self.problem, self.q = problem, problem.rotation_matrix
        self.each = [c.solution() for c in problem.coordinates]
        y = {k: np.array([getattr(s, k) for s in self.each]) for k in ("gamma2", "mean", "std", "mean_mfg")}
        self.gamma2_y, self.mean_y, self.std_y, self.mean_mfg_y = y["gamma2"], y["mean"], y["std"], y["mean_mfg"]
        self.mean, self.mean_mfg = self.mean_y @ self.q.T, self.mean_mfg_y @ self.q.T
        self.std = np.sqrt((self.q ** 2) @ self.std_y ** 2)

    def _y(self, x):
        check_array("x", x, 2, (None, self.problem.dim))
        return x @ xp_of(x).asarray(self.q, dtype=x.dtype)

    def _x(self, y):
        return y @ xp_of(y).asarray(self.q.T, dtype=y.dtype)

    def sample(self, z, nash=False):
        """Points of the limiting law (or the Nash one) from standard normals z (N, d)."""
        return ((self.mean_mfg_y if nash else self.mean_y) + self.std_y * z) @ self.q.T

    def _feedback(self, x, mean_y):
        """Q (−2 Γ2 ⊙ (Qᵀx − mean_y)), on x's device and in its dtype."""
        g, m = (xp_of(x).asarray(v, dtype=x.dtype) for v in (self.gamma2_y, mean_y))
        return self._x(-2.0 * g * (self._y(x) - m))

    def control(self, x):
        """α̂(x) = Q α̂_y(Qᵀx), α̂_y(y)_i = −2 Γ2_i (y_i − m*_i).  (N, d) → (N, d)."""
        return self._feedback(x, self.mean_y)

    def control_mfg(self, x):
        """The Nash control, rotated the same way.  (N, d) → (N, d)."""
        return self._feedback(x, self.mean_mfg_y)

    def jacobian(self):
        """∂α̂/∂x = −2 Q diag(Γ2) Qᵀ, (d, d)."""
        return -2.0 * (self.q * self.gamma2_y) @ self.q.T

    def mean_own_influence(self, w, w_global=0.0):
        """Each coordinate's μ(w) (LQSolution.mean_own_influence), rotated into x: (d,)."""
        return np.array([s.mean_own_influence(w, w_global) for s in self.each]) @ self.q.T

    def _each(self, method, x):
        """Each coordinate's LQSolution.method at its y coordinate: [(N,), …]."""
        y = self._y(x)
        return [getattr(s, method)(y[:, i:i + 1]) for i, s in enumerate(self.each)]

    def value(self, x):
        """Σ_i v_i(y_i): each coordinate's cost-to-go of α̂.  (N, d) → (N,)."""
        return sum(self._each("value", x))

    def value_paper(self, x):
        return sum(self._each("value_paper", x))

    def density(self, x):
        """The limiting law's density: the product over y's coordinates (Q keeps volumes)."""
        return np.prod(self._each("density", x), axis=0)


def rotated_problem(dim, rotation=1):
    """The coupled benchmark of this project: in y, coordinate i (t = i/(d − 1)) has
    c3 = 0.5 + 1.5t (its stiffness, so that each coordinate's Γ2 differs and α̂'s Jacobian
    in x is not diagonal), c4 = 0.5 − 0.5t and σ = 0.3 + 0.4t (the paper's 0.5, 0.25 and
    0.5 at t = 0, ½, ½), the paper's other coefficients; Q drawn with seed `rotation`."""
    spread = np.linspace(0.0, 1.0, dim) if dim > 1 else np.array([0.5])
    return RotatedLQProblem(tuple(LQProblem(c3=float(0.5 + 1.5 * t), c4=float(0.5 - 0.5 * t), sigma=float(0.3 + 0.4 * t))
                                  for t in spread), rotation)


# ---------------------------------------------------------------------------------------
# Config and the presets
# ---------------------------------------------------------------------------------------

ALGOS = ("ac", "b", "m", "drl")


@dataclass(frozen=True)
class Config:
    """Everything a training run needs; saved with every run and checkpoint. Paper symbols
    in brackets; the defaults are Algorithm 2's (B) at the paper's settings, and
    `preset(name, algo)` gives the named settings of each algorithm.

    `readable` is a field, not an environment variable, so that config.json and every
    checkpoint record which arithmetic made a run's numbers (the two agree only up to the
    order of a few sums, in clipping and PPO) and a resume keeps it."""
    algo: str = "b"                 # which algorithm: ac, b, m or drl (Algorithms 1–4)
    steps: int = 200_000            # [N] training steps
    batch: int = 8192               # [B] agents simulated in parallel (AC: 1)
    minibatch: int = 1024           # [b] minibatch size, M only; B must be divisible by it
    n_samples: int = 1000           # [k] Langevin samples per pool (global and local)
    langevin_steps: int = 200       # Langevin iterations per refresh
    eps_langevin: float = 0.05      # [ε] Langevin step size
    langevin_every: int = 1         # refresh the pools when n % this == 0 (M: 50)
    hutchinson: bool = False        # score loss with Hutchinson's trace (M) or the exact one
    std_floor: float = 1e-5         # added to the actor's softplus std (the paper's 1e-5)
    lr_actor: float = 5e-6          # [ρ_Π] actor's learning rate
    lr_critic: float = 1e-5         # [ρ_V] critic's learning rate
    lr_global: float = 1e-6         # [ρ_Σ] global score: slow, the competitive population
    lr_local: float = 5e-4          # [ρ_Σ̃] local score: fast, the agent's own group
    schedule: bool = True           # rates ×1 → ×lr_peak over the first 10 %, → ×lr_final at the end
    lr_peak: float = 10.0           # the schedule's peak factor (the paper: 10)
    lr_final: float = 0.25          # the schedule's factor at the last step (the paper: 0.25)
    target_every: int = 200         # hard copy critic → target when n % this == 0; 0: no target
    grad_clip: float = 1.0          # global-norm clip of actor and critic gradients; 0: off
    actor_gradient: str = "score"   # the actor's gradient: "score", δ·∇log π (Algorithms 1–3), or
                                    # "pathwise", ∂Q/∂a through the known step (actor_critic_update)
    per_coordinate: bool = False    # the reward divided by d: the cost per coordinate, so that the
                                    # critic's values do not grow with the dimension (reward_scale)
    actor_zero_mean: bool = False   # the actor's mean head (Wm, bm) starts at 0: the first actions are
                                    # exploration alone, no random map of x pushes agents apart
    critic_zero_init: bool = False  # the critic's output layer (W2, b2) starts at 0: V starts flat, and
                                    # the pathwise actor's first slopes are learned, not drawn
    td_control_variate: bool = False  # subtract ∇T(x)·(the step's noise) from the TD target (DRL: each δ)
                                    # (noise_control_variate): its mean is zero, its variance most
                                    # of the target's
    restart_beyond: float = 0.0     # an agent with a coordinate beyond ± this starts again from
                                    # N(0, I) after its step (M: once every minibatch has stepped;
                                    # DRL: after its rollout; restart_outside); 0: never
    rollout: int = 256              # [M] DRL rollout length
    ppo_clip: float = 0.2           # [ε_clip] PPO's clip range 1 ± ε_clip; 0: no clipping
    gae_lambda: float = 0.95        # [λ] GAE's trace decay
    ent_coef: float = 0.01          # [c_ent] weight of the entropy bonus
    ppo_epochs: int = 1             # PPO passes over each rollout (Algorithm 4: one)
    ppo_minibatches: int = 1        # random minibatches per pass, an actor and a critic step
                                    # on each (Algorithm 4: 1, the whole rollout at once)
    adv_norm: bool = False          # normalise each minibatch's advantages to mean 0, std 1
    score_warmup: int = 0           # Adam steps fitting both score networks to the initial
                                    # law N(0, I) before step 0 (the paper: none, 0)
    score_warmup_lr: float = 1e-3   # the warm start's learning rate
    antithetic: bool = False        # the agents' normals (X₀, action and Brownian noise) in
                                    # pairs z, −z: the population mean moves without noise
    mf_correction: bool = False     # add x·E[∂f/∂m̃] to the running cost (see mf_correction)
    hidden_actor: int = 64          # hidden tanh units of the actor Π
    hidden_critic: int = 128        # hidden tanh units of the critic V
    hidden_score: int = 128         # hidden tanh units of each score network Σ, Σ̃
    hidden_per_dim: int = 0         # each network has at least this × d hidden units (0: the three
                                    # widths above as they are; see hidden_units)
    dtype: str = "float32"          # float32 (training) or float64
    seed: int = 0                   # initial weights and every random stream
    eval_every: int = 1000          # evaluate (and record history) every this many steps
    eval_samples: int = 2048        # points x ~ limiting law for control/value errors
    eval_langevin_steps: int = 200  # Langevin iterations from N(0, 1) for evaluation samples
    eval_chains: int = 0            # fresh Langevin chains per law at each evaluation (0: n_samples);
                                    # their mean's error per coordinate is the law's std / √chains
    checkpoint_every: int = 10_000  # write the checkpoint every this many steps (with run_dir)
    readable: bool = False          # train with the readable definitions instead of fastpaths.py:
                                    # langevin, clip_grad_norm and adam_update on plain dicts,
                                    # the loop gae, PPO on all rows at once, no threads
    problem: LQProblem = field(default_factory=LQProblem)  # the benchmark (or a RotatedLQProblem)

    def __post_init__(self):
        if isinstance(self.problem, dict):  # from JSON
            kind = RotatedLQProblem if "coordinates" in self.problem else LQProblem
            object.__setattr__(self, "problem", kind(**self.problem))
        check_config(self, ALGOS, (LQProblem, RotatedLQProblem))   # every field's type and range (rundir)

    def to_dict(self):
        return asdict(self)   # the problem too, as a dict


# The Config fields only some algorithms read; every other field is read by all four. The
# command line refuses a --set of one of these for an algorithm that would ignore it
# (tests/test_cli.py traces which fields each trainer reads, and checks this table).
READ_ONLY_BY = {
    "minibatch": ("m",), "langevin_every": ("m",),            # Algorithm 3's minibatches, sparse refresh
    "actor_gradient": ("ac", "b", "m"),                       # DRL's PPO is a score-function gradient
    **dict.fromkeys(("rollout", "ppo_clip", "gae_lambda", "ent_coef", "ppo_epochs", "ppo_minibatches",
                     "adv_norm"), ("drl",)),                  # Algorithm 4's PPO and GAE
}


# The paper's settings (docs/benchmark.md §1), as its algorithm boxes differ from B's.
PAPER = {
    "ac": Config(algo="ac", batch=1, target_every=0, grad_clip=0.0),  # one agent, plain TD(0)
    "b": Config(algo="b"),
    "m": Config(algo="m", steps=20_000, langevin_every=50, hutchinson=True),
    "drl": Config(algo="drl", target_every=0),  # GAE bootstraps with V itself: no target
}

# The quick preset: the same algorithms at about a minute a run on a 2-core CPU. Each
# change's evidence is in docs/findings.md, "What it took to settle".
QUICK_CHANGES = dict(
    batch=1024, minibatch=256,     # an eighth of the agents
    langevin_steps=10,             # the chains are persistent: each refresh continues the last
    lr_actor=5e-5, lr_critic=1e-4, lr_global=1e-5, lr_local=5e-3,  # ×10: runs 20× shorter
    std_floor=0.5,                 # the std head collapses without it; moves no mean
    target_every=0,                # a copy per 200 steps is one Bellman backup per 200
    eval_every=250, checkpoint_every=1000, rollout=32)  # a short run's bookkeeping
QUICK = {
    "ac": replace(PAPER["ac"], **{**QUICK_CHANGES, "batch": 1, "steps": 4000,
                                  "std_floor": 1e-5}),  # the paper's floor: 0.5 ran away
    "b": replace(PAPER["b"], **{**QUICK_CHANGES, "steps": 10_000, "lr_actor": 1e-4, "lr_critic": 2e-4,
                                "lr_global": 2e-5, "lr_local": 1e-2}),  # 1 update a step, M's 4: ×2
    "m": replace(PAPER["m"], **{**QUICK_CHANGES, "steps": 10_000}),
    "drl": replace(PAPER["drl"], **{**QUICK_CHANGES, "steps": 3000}),
}

# The lean preset: the paper's, with LEAN_LANGEVIN_STEPS Langevin iterations per refresh
# instead of 200 (persistent chains; docs/performance.md, "Langevin iterations per refresh").
LEAN_LANGEVIN_STEPS = 10
LEAN = {algo: replace(cfg, langevin_steps=LEAN_LANGEVIN_STEPS) for algo, cfg in PAPER.items()}


# The robust preset: the quick one with the fewest further changes that make the learners
# settle on every seed; each change's ablation is in docs/robust.md. At the paper's scale:
# --set batch=8192 (M: and minibatch=1024).
ROBUST_SCORE_WARMUP = 300        # the score networks start at the score of N(0, I)
ROBUST_PPO = dict(ppo_epochs=10, ppo_minibatches=8, adv_norm=True)  # DRL: the usual PPO
ROBUST = {algo: replace(cfg, score_warmup=ROBUST_SCORE_WARMUP) for algo, cfg in QUICK.items()}
ROBUST["drl"] = replace(ROBUST["drl"], **ROBUST_PPO, steps=6000)

# The steady preset: the robust one with the two changes that take the sampling noise and the
# sampler's bias out of the agents' mean (docs/robust.md): the agents' normals in antithetic
# pairs (B, M and DRL; AC has a single agent, so no pair) and a Langevin step of
# STEADY_EPS_LANGEVIN instead of the paper's 0.05. M refreshes its pools only every 50 steps,
# so it takes STEADY_M_LANGEVIN_STEPS iterations per refresh instead of 10: each refresh then
# moves its pools as far in Langevin time as the paper's step does (40 × 0.0125 = 10 × 0.05).
# DRL trains 12,000 steps: plain DRL settles from step 5,000-7,750. At the paper's scale:
# --set batch=8192 (M: and minibatch=1024).
STEADY_EPS_LANGEVIN = 0.0125
STEADY_M_LANGEVIN_STEPS = 40
STEADY = {algo: replace(cfg, eps_langevin=STEADY_EPS_LANGEVIN, antithetic=algo != "ac")
          for algo, cfg in ROBUST.items()}
STEADY["m"] = replace(STEADY["m"], langevin_steps=STEADY_M_LANGEVIN_STEPS)
STEADY["drl"] = replace(STEADY["drl"], steps=12_000)

# The single preset: AC alone, one agent (docs/single-agent.md). The steady preset's AC with
# what one agent's learning needs, each change chosen from what limits it:
# - a policy-std floor of SINGLE_STD_FLOOR: the policy gradient's noise per sample grows as
#   1/std, and without a floor the ½a² cost shrinks AC's std head to 0.15-0.5;
# - the local score's rate ×0.002 (SINGLE_LR_LOCAL): a long memory for the agent's own law.
#   Little of the group's term then passes through its own states (w → 0), so the rest point
#   is m_mfg without the correction and m* with it (docs/benchmark.md §3), and the law it
#   learns, a moving average of one agent's states, swings less from one evaluation to the next;
# - the rates held at ×1 for the first 10 % of the run, then down to ×0.05 (no ×10 peak:
#   noise, not speed, is what limits a single agent), over 200,000 steps;
# - the agent restarted from N(0, 1) when it leaves [−SINGLE_RESTART, SINGLE_RESTART]
#   (restart_outside): until its actor confines it, one trajectory wanders like a Brownian
#   motion, and a start whose actor pushes outward runs away for good;
# - the TD target less its noise's linear part (td_control_variate): one agent cannot
#   average the O(√Δt) noise of its TD errors away, and its critic then learns the value's
#   curvature too slowly: the control it teaches comes out too flat, its rest point off.
SINGLE_STD_FLOOR = 0.5
SINGLE_RESTART = 3.0
SINGLE_LR_LOCAL = 1e-5
SINGLE = {"ac": replace(STEADY["ac"], steps=200_000, std_floor=SINGLE_STD_FLOOR, lr_local=SINGLE_LR_LOCAL,
                        lr_peak=1.0, lr_final=0.05, restart_beyond=SINGLE_RESTART, td_control_variate=True,
                        eval_every=5000, checkpoint_every=10_000)}

# The dims preset: B, M and DRL in d > 1 dimensions (docs/dimensions.md). The steady preset
# with the changes under which d = 8 settles, each ablated there, over DIMS_STEPS steps:
# - the reward per coordinate (per_coordinate): the critic's values do not grow with d;
# - B and M: the pathwise actor gradient (actor_gradient): each coordinate's action learns
#   from its own slope of Q instead of one scalar TD error that carries all d coordinates'
#   noise; and the actor's rate ×DIMS_ACTOR_RATE: the pathwise gradient follows the critic's
#   slope, so the actor must move slower than the critic fits it (two timescales). DRL's PPO
#   is a score-function gradient and keeps it, with its rates.
DIMS_ACTOR_RATE = 0.1
DIMS_STEPS = 20_000
DIMS = {algo: replace(STEADY[algo], actor_gradient="pathwise", per_coordinate=True, steps=DIMS_STEPS,
                      lr_actor=DIMS_ACTOR_RATE * STEADY[algo].lr_actor) for algo in ("b", "m")}
DIMS["drl"] = replace(STEADY["drl"], per_coordinate=True, steps=DIMS_STEPS)

NAMED_PRESETS = {"quick": QUICK, "paper": PAPER, "lean": LEAN, "robust": ROBUST, "steady": STEADY,
                 "single": SINGLE, "dims": DIMS}
PRESETS = tuple(NAMED_PRESETS)


def preset(name, algo, **overrides):
    """One algorithm's named settings (PAPER, QUICK, LEAN, ROBUST, STEADY; SINGLE: AC only;
    DIMS: B, M and DRL), any field overridden."""
    if name not in PRESETS:
        raise ValueError(f"preset must be one of {PRESETS}, got {name!r}")
    if algo not in ALGOS:
        raise ValueError(f"algo must be one of {ALGOS}, got {algo!r}")
    if algo not in NAMED_PRESETS[name]:
        raise ValueError(f"the {name} preset is for {', '.join(NAMED_PRESETS[name])} only, not {algo}")
    return replace(NAMED_PRESETS[name][algo], **overrides)


# ---------------------------------------------------------------------------------------
# Training state: one plain dict, all a trainer needs and all a checkpoint holds
# ---------------------------------------------------------------------------------------

class MeanField(NamedTuple):
    """What a Langevin refresh tells the agents (line 8; M: 10, DRL: 9): the global mean m,
    the local mean m̃ and E_{x'∼local}[∂f/∂m̃(x', m̃)] for the mean-field correction (zero
    without it); each (d,), on the device."""
    m: object
    m_tilde: object
    mf_grad: object


TIMING_KEYS = ("steps_per_second", "wall_seconds")  # history fields that vary run to run
# The purposes a run draws random numbers for: the third element of a stream's key.
STREAM_TRAIN, STREAM_INIT, STREAM_WARMUP, STREAM_EVAL, STREAM_CURVES = 0, 1, 3, 7, 11


def training_rng(cfg, n):
    """The random stream of training step n, keyed by (seed, n): every number a step draws
    comes from it, so a checkpoint taken between steps holds the random state exactly by
    holding n, on NumPy and on CuPy alike (fastpaths.make_rng)."""
    return make_rng((cfg.seed, n, STREAM_TRAIN), get_xp())


def hidden_units(cfg):
    """The hidden widths (actor, critic, score): the Config's, each raised to hidden_per_dim·d.
    The actor's Jacobian ∂μ/∂x = W1 diag(1 − h²) Wm, d × d, has rank at most its H hidden
    units, and so has a score network's: with H < d neither can represent the closed form's
    −2Γ2·I or a Gaussian law's score −Σ⁻¹(x − m) (dimensions.md, d = 100)."""
    floor = cfg.hidden_per_dim * cfg.problem.dim
    return max(cfg.hidden_actor, floor), max(cfg.hidden_critic, floor), max(cfg.hidden_score, floor)


def init_state(cfg, xp=None):
    """Networks, Adam states, target critic, agents X₀ ~ N(0, I), both Langevin pools from
    N(0, I) and the step counter n = 0 (Algorithms 1–4, lines 1–3). Each network is a
    plain dict of arrays with cfg.readable, else a fastpaths.FlatParams: the same arrays as
    views into one buffer, which its Adam moments share the layout of."""
    xp = xp or get_xp()
    d, dtype = cfg.problem.dim, np.dtype(cfg.dtype)
    host = np.random.default_rng(cfg.seed)  # initial weights: identical on every backend
    network = (lambda p: {k: v.copy() for k, v in p.items()}) if cfg.readable else FlatParams
    hidden_actor, hidden_critic, hidden_score = hidden_units(cfg)
    actor = nets.init_actor(d, d, host, hidden_actor, dtype, xp)
    if cfg.actor_zero_mean:  # drawn, then zeroed: the other networks' draws stay as they were
        actor["Wm"], actor["bm"] = xp.zeros_like(actor["Wm"]), xp.zeros_like(actor["bm"])
    critic = nets.init_critic(d, host, hidden_critic, dtype, xp)
    if cfg.critic_zero_init:  # drawn, then zeroed, as the actor's mean head above
        critic["W2"], critic["b2"] = xp.zeros_like(critic["W2"]), xp.zeros_like(critic["b2"])
    params = {
        "actor": network(actor),
        "critic": network(critic),
        "score_global": network(nets.init_score(d, host, hidden_score, dtype, xp)),
        "score_local": network(nets.init_score(d, host, hidden_score, dtype, xp)),
    }
    rng = make_rng((cfg.seed, 0, STREAM_INIT), xp)
    state = {
        "step": 0,
        "params": params,
        "adam": {k: adam_init(v) for k, v in params.items()},
        "target": network(params["critic"]) if cfg.target_every else None,
        "x": agent_normals(rng, cfg).standard_normal((cfg.batch, d), dtype=dtype),
        "pool_global": rng.standard_normal((cfg.n_samples, d), dtype=dtype),
        "pool_local": rng.standard_normal((cfg.n_samples, d), dtype=dtype),
        "field": MeanField(*(xp.zeros(d, dtype=dtype) for _ in MeanField._fields)),  # set by each refresh
        "buffer": [],                          # DRL rollout: one dict per stored step
        "history": [],
        "loss_log": {},                        # name → [(step, loss)] since the last evaluation
        "wall_seconds": 0.0,                   # wall-clock time in training loops (with evals)
        "train_seconds": 0.0,                  # time in training steps alone (for steps/s)
    }
    if cfg.score_warmup:
        warm_start_scores(state, cfg)
    return state


def warm_start_scores(state, cfg):
    """Fit both score networks to the score of the initial law N(0, I), s(x) = −x, before
    training: cfg.score_warmup Adam steps (rate cfg.score_warmup_lr, an Adam state of its
    own that training does not inherit) on the exact score-matching loss at k fresh
    N(0, I) draws each, on their own random stream.

    Why: the agents and both Langevin pools start from N(0, I), but a randomly initialised
    score network can point outward on both sides; at the global network's slow rate it
    is not corrected in time, its persistent pool drifts away, and the agents pay for a
    global mean that no population has. Starting each network at the score of the law its
    pool already holds removes that transient and nothing else (docs/ablations.md, the warm start)."""
    xp, d, dtype = xp_of(state["x"]), cfg.problem.dim, state["x"].dtype
    rng = make_rng((cfg.seed, 0, STREAM_WARMUP), xp)
    for name in ("score_global", "score_local"):
        params, adam = state["params"][name], adam_init(state["params"][name])
        for _ in range(cfg.score_warmup):
            x = rng.standard_normal((cfg.n_samples, d), dtype=dtype)      # (k, d) ~ N(0, I)
            _, grads = nets.score_loss_and_grad(params, x)
            clip_and_adam(cfg, params, grads, adam, cfg.score_warmup_lr)


# ---------------------------------------------------------------------------------------
# The step functions, shared by the trainers
# ---------------------------------------------------------------------------------------

def learning_rates(cfg, n):
    """The four learning rates at step n (the paper's schedule, or constant)."""
    f = lr_factor(n, cfg.steps, peak=cfg.lr_peak, final=cfg.lr_final) if cfg.schedule else 1.0
    return {"actor": f * cfg.lr_actor, "critic": f * cfg.lr_critic,
            "score_global": f * cfg.lr_global, "score_local": f * cfg.lr_local}


def clip_and_adam(cfg, params, grads, adam, lr, max_norm=0.0):
    """Clip the gradients to global norm max_norm (when > 0), then one Adam step on one
    network, in place: clip_grad_norm and adam_update with cfg.readable, else the same on
    its one buffer (fastpaths.adam_step; equal up to the order the norm's squares add)."""
    if not cfg.readable:
        return adam_step(params, grads, adam, lr, max_norm)
    if max_norm:
        clip_grad_norm(grads, max_norm)
    adam_update(params, grads, adam, lr)


def score_update(state, cfg, x, lrs, rng):
    """One Adam step on each score network's score-matching loss at the agents' states x:
    the same states for both, which differ only in learning rate (global slow, local fast).
    Hutchinson probes z ~ N(0, I) when cfg.hutchinson, else the exact trace. Returns the
    two losses, as 0-d arrays on the device (read at evaluations)."""
    names, calls = ("score_global", "score_local"), []
    for name in names:  # the probes are drawn here, before either call runs: a fixed stream order
        z = rng.standard_normal(x.shape, dtype=x.dtype) if cfg.hutchinson else None
        calls.append((nets.score_loss_and_grad, state["params"][name], x, z))
    results = concurrently(calls, work=x.shape[0] * cfg.hidden_score, in_order=cfg.readable)
    losses = {}
    for name, (loss, grads) in zip(names, results):
        losses[name] = loss
        clip_and_adam(cfg, state["params"][name], grads, state["adam"][name], lrs[name])
    return losses


def langevin(score_fn, pool, noise, eps):
    """Unadjusted Langevin dynamics from `pool` (k, d), one iteration per slice of `noise`
    (n_steps, k, d), standard normals; returns the new pool (k, d).

        x ← x + (ε/2) s(x) + √ε z,   z = noise[i] ~ N(0, I),   i = 0 … n_steps − 1

    Chains are persistent: pass the returned pool back in to continue them. On a Gaussian
    target of variance v the chain's stationary variance is v / (1 − ε/(4v)), not v: the
    sampler's own bias (docs/benchmark.md §4). Raises ValueError if the pool is not finite,
    before or after the iterations (a diverging score network shows up here).
    """
    check_array("pool", pool, 2)
    if noise.ndim != 3 or noise.shape[1:] != pool.shape:
        raise ValueError(f"noise must have shape (n_steps, {pool.shape[0]}, {pool.shape[1]}), got {noise.shape}")
    xp = xp_of(pool)
    if not bool(xp.isfinite(pool).all()):
        raise ValueError("langevin: the starting pool contains non-finite values")
    half, root = 0.5 * eps, math.sqrt(eps)
    x = pool
    for z in noise:
        x = x + half * score_fn(x) + root * z
    if not bool(xp.isfinite(x).all()):
        raise ValueError(f"langevin: the pool became non-finite within {len(noise)} steps "
                         f"(eps={eps}); the score function diverges")
    return x


def sample_pools(params, pools, n_steps, eps, rng, readable=False):
    """Continue each pool's Langevin chain under its own score network: `langevin` with
    s = nets.score_forward(p, ·), n_steps iterations; returns the new pools. The normals
    are drawn first, pool by pool, from `rng`; without `readable` the chains then run as
    fastpaths.langevin_score_net, which is `langevin` bit for bit given those normals."""
    calls = []
    for p, pool in zip(params, pools):  # every normal is drawn before any chain runs
        z = rng.standard_normal((n_steps,) + pool.shape, dtype=pool.dtype)
        calls.append((langevin, lambda x, p=p: nets.score_forward(p, x), pool, z, eps) if readable
                     else (langevin_score_net, p, pool, z, eps))
    return concurrently(calls, work=n_steps * pools[0].size * params[0]["W1"].shape[1], in_order=readable)


def langevin_refresh(state, cfg, rng):
    """Continue both persistent Langevin chains under the current score networks (the pools
    are the sampler's own state and stay in `state`) and return the MeanField the agents
    pay for: m, m̃ the pools' means (Algorithms 1–4, line 8/9/10)."""
    state["pool_global"], state["pool_local"] = sample_pools(
        [state["params"]["score_global"], state["params"]["score_local"]],
        [state["pool_global"], state["pool_local"]], cfg.langevin_steps, cfg.eps_langevin, rng, cfg.readable)
    m_tilde = state["pool_local"].mean(axis=0)
    mf_grad = (cfg.problem.dcost_dm_tilde(state["pool_local"], m_tilde).mean(axis=0)
               if cfg.mf_correction else state["field"].mf_grad)  # without it: init_state's zeros
    return MeanField(state["pool_global"].mean(axis=0), m_tilde, mf_grad)


def mf_correction(x, mf_grad):
    """The mean-field (Lions-derivative) correction to each agent's running cost: x·E[∂f/∂m̃].

    Why: the group's cost J(ν) = ∫ f(x, m, m̃(ν), α) ν(dx) changes with its law ν by
    ∫ [f(x) + x·E_{x'∼ν} ∂f/∂m̃(x', m̃)] δν(dx) (m̃ = ∫ x ν(dx) moves by ∫ x δν), so an agent
    who pays f + x·E[∂f/∂m̃], with E[∂f/∂m̃] frozen at its current value, has as first-order
    condition the group's: its rest point is the cooperative MFCG equilibrium, not the
    Nash one. x (N, d), mf_grad (d,) → (N,). In the LQ benchmark E[∂f/∂m̃] = 0.6875·m̃ at
    E[x'] = m̃ (docs/benchmark.md §3)."""
    return (x * mf_grad).sum(axis=1)


class AntitheticNormals:
    """A random stream's standard normals in antithetic pairs: rows i and i + n/2 of each
    (n, …) draw are z and −z, with z drawn from `rng`. Each row is still N(0, I).

    Why: the agents are a finite population whose mean the score networks learn and the
    agents then pay for. With independent noise that mean fluctuates (standard error
    σ/√(2κB) ≈ 0.010 at B = 1,024), and the equilibrium's feedback amplifies the
    fluctuation by about √(K/D): ×2.7 at the Nash mean. With pairs z, −z the noise cancels
    in the mean of every step (docs/antithetic.md)."""

    def __init__(self, rng):
        self.rng = rng

    def standard_normal(self, size, dtype=np.float64):
        if size[0] % 2:
            raise ValueError(f"antithetic normals need an even number of rows, got {size[0]}")
        half = self.rng.standard_normal((size[0] // 2, *size[1:]), dtype=dtype)
        return xp_of(half).concatenate([half, -half])


def agent_normals(rng, cfg):
    """The stream the agents' own normals come from: `rng`, or with cfg.antithetic its
    antithetic pairs (AntitheticNormals)."""
    return AntitheticNormals(rng) if cfg.antithetic else rng


def act_and_step(state, cfg, x, field, rng, log_prob=False):
    """Sample actions, observe rewards and next states for the agents x (lines 9–11), who
    pay for the means of `field` (a MeanField), and with cfg.mf_correction −Δt·x·E[∂f/∂m̃]
    too (see mf_correction), all times reward_scale(cfg) (1/d with cfg.per_coordinate).
    Returns (a, r, x_next), and log π(a|x) when log_prob (DRL's
    log π_old: the actor does not change between acting and its PPO update). The action
    and Brownian normals come from agent_normals(rng, cfg)."""
    pb = cfg.problem
    rng = agent_normals(rng, cfg)
    sample = nets.actor_sample(state["params"]["actor"], x, rng, cfg.std_floor, log_prob=log_prob)
    a, logp = sample if log_prob else (sample, None)
    r = pb.reward(x, field.m, field.m_tilde, a)                         # (B,)
    if cfg.mf_correction:
        r = r - pb.dt * mf_correction(x, field.mf_grad)
    if cfg.per_coordinate:
        r = r * reward_scale(cfg)
    x_next = pb.step(x, a, rng)                                         # (B, d)
    return (a, r, x_next, logp) if log_prob else (a, r, x_next)


def actor_critic_update(state, cfg, x, a, r, x_next, lrs):
    """One TD(0) actor–critic update (Algorithm 2, lines 12–17).

        y = r + γ T(x')          T the target critic, or the critic itself without one
        δ = y − V(x)             per-sample TD error, the advantage (N,)
        critic: Adam on mean (y − V(x))²;  actor: Adam on −mean(δ · log π(a|x))
    With cfg.actor_gradient = "pathwise" the actor instead takes the reparameterised step on
    −mean(∂Q/∂a · a), ∂Q/∂a from action_value_gradient with T's slope (the critic y reads),
    and δ is not computed. With cfg.td_control_variate, y less γ·noise_control_variate (the
    same mean, a fraction of the variance), and δ with it. Gradients are clipped to
    cfg.grad_clip (global norm) when it is positive."""
    critic, actor = state["params"]["critic"], state["params"]["actor"]
    bootstrap = state["target"] if state["target"] is not None else critic
    if cfg.actor_gradient == "pathwise":    # T(x') and its slope from one pass
        v_next, grad_next = nets.critic_value_and_input_grad(bootstrap, x_next)
    else:
        v_next = nets.critic_forward(bootstrap, x_next)
    y = r + cfg.problem.discount * v_next                                    # (B,)
    if cfg.td_control_variate:
        y = y - cfg.problem.discount * noise_control_variate(cfg, bootstrap, x, a, x_next)
    if cfg.actor_gradient == "pathwise":
        actor_call = (nets.actor_pathwise_loss_and_grad, actor, x, a,
                      action_value_gradient(cfg, a, grad_next), cfg.std_floor)
    else:
        delta = y - nets.critic_forward(critic, x)                           # (B,)
        actor_call = (nets.actor_loss_and_grad, actor, x, a, delta, cfg.std_floor)
    (loss_v, g_v), (loss_pi, g_pi) = concurrently(
        [(nets.critic_loss_and_grad, critic, x, y), actor_call],
        work=x.shape[0] * cfg.hidden_critic, in_order=cfg.readable)
    clip_and_adam(cfg, critic, g_v, state["adam"]["critic"], lrs["critic"], cfg.grad_clip)
    clip_and_adam(cfg, actor, g_pi, state["adam"]["actor"], lrs["actor"], cfg.grad_clip)
    return {"critic": loss_v, "actor": loss_pi}


def action_value_gradient(cfg, a, grad_v_next):
    """∂Q/∂a at the actions taken, Q(x, a) = r(x, a) + γ V(x'(a)) with x' = x + a Δt + noise
    the step that was taken (its noise held fixed), given grad_v_next = ∇V(x') (B, d):

        ∂Q/∂a = ∂r/∂a + γ Δt ∇V(x')

    What cfg.actor_gradient = "pathwise" feeds the actor (nets.actor_pathwise_loss_and_grad).
    Why: the score-function gradient δ·∇log π weighs every output by one scalar δ, and δ
    carries the reward's and the next state's noise summed over all d coordinates, while the
    signal for one coordinate's action is a 1/d share of it and, per step, of order Δt next
    to noise of order √Δt. The pathwise gradient gives each coordinate its own slope of Q
    through the known dynamics (∂x'/∂a = Δt I), with no such sum; it is a departure from the
    paper (docs/dimensions.md). actor_critic_update takes ∇V from the critic the TD target
    bootstraps from (the target critic where there is one), so that the actor follows the
    V that y reads."""
    pb = cfg.problem
    return reward_scale(cfg) * pb.dreward_da(a) + (pb.discount * pb.dt) * grad_v_next


def noise_control_variate(cfg, critic, x, a, x_next):
    """∇T(x)·(x' − x − aΔt), (B,): the first-order part of T(x') that is the step's Brownian
    increment (both problems step X' = X + aΔt + noise), T the network `critic`. Given x and
    a its mean is zero, so a TD target less γ times it has the same mean; what it takes out
    is most of the target's variance (a departure from the paper; docs/single-agent.md).
    DRL takes it out of each δ of its GAE (ppo_update): a later step's noise has mean zero
    given every earlier action, so the policy gradient keeps its mean too.

    Why: per step, the TD error's signal is of order Δt (the reward, the discounting, the
    drift), its noise of order √Δt (T′ σ √Δt z): at Δt = 0.01 about ten times larger. A
    population (B, M) averages it over its agents; one agent (AC) cannot, and its critic
    then learns the value's curvature, which only the spread of its own states shows, too
    slowly: the control it teaches comes out too flat and its rest point off. Less the
    increment's linear part, what is left of the noise is of order Δt."""
    _, grad = nets.critic_value_and_input_grad(critic, x)
    return brownian_part(cfg, grad, x, a, x_next)


def brownian_part(cfg, grad, x, a, x_next):
    """grad·(x' − x − aΔt), (B,): a slope (B, d) times the step's Brownian increment."""
    return (grad * (x_next - x - cfg.problem.dt * a)).sum(axis=1)


def reward_scale(cfg):
    """The factor the agents' rewards are paid in: 1/d with cfg.per_coordinate, else 1.

    Why: the reward sums d coordinates' costs, so the values the critic must output grow
    as d, and Adam moves each weight by about its rate per step whatever the gradient's
    size: at d = 8 the critic cannot keep up with values eight times larger, and its
    error then swamps the slopes the actor learns from. Dividing by d rescales the
    objective by a constant: the optimal control is unchanged (docs/dimensions.md). (Not
    the weight of DRL's entropy bonus against it, unless its advantages are normalised, as
    in the steady and dims presets.)"""
    return 1.0 / cfg.problem.dim if cfg.per_coordinate else 1.0


def restart_outside(cfg, x, rng):
    """The agents x (N, d) after their step, each one with a coordinate beyond
    ±cfg.restart_beyond replaced by a fresh draw from N(0, I), the law they started from
    (a departure from the paper; off at 0). The normals are drawn from `rng` whether or not
    an agent is out, so the random stream does not depend on the path. With cfg.antithetic
    an antithetic pair (rows i and i + N/2) restarts together, from a fresh pair z, −z: a
    restart then moves the agents' mean by a known amount, not by a random draw, and the
    pairs stay antithetic, as they started (init_state).

    Why: one agent's trajectory (AC) wanders as a Brownian motion until its actor learns to
    confine it (σ√t: about ±5 by step 10,000), and a start whose actor pushes outward runs
    away to where the networks' tanh units saturate and nothing is learned any more
    (docs/single-agent.md). The transition the learners train on is the true one (x' before
    the restart), so the TD targets are unchanged; only where the agent goes next is."""
    if not cfg.restart_beyond:
        return x
    xp = xp_of(x)
    fresh = agent_normals(rng, cfg).standard_normal(x.shape, dtype=x.dtype)
    out = (xp.abs(x) > cfg.restart_beyond).any(axis=1, keepdims=True)
    if cfg.antithetic:
        half = x.shape[0] // 2
        out = xp.concatenate([out[:half] | out[half:]] * 2)
    return xp.where(out, fresh, x)


def refresh_target(state):
    """T ← V: copy the critic's arrays into the target's (Algorithm 2, line 18)."""
    for k, v in state["params"]["critic"].items():
        state["target"][k][...] = v


def gae(rewards, values, next_values, gamma, lam):
    """Generalised advantage estimation along time, independently for every agent.

    rewards, values, next_values (M, B): r_m, V(X_m), V(X_{m+1}). Implements Algorithm 4
    line 15, with Â_M = 0:
        δ_m = r_m + γ V(X_{m+1}) − V(X_m),   Â_m = δ_m + γλ Â_{m+1},   R̂_m = Â_m + V(X_m)
    Returns (advantages, returns), both (M, B). Agents are never chained into each other.
    Example: one agent, γ = λ = 1, r = [1, 1], V ≡ 0 → Â = [2, 1].
    """
    xp = xp_of(rewards)
    deltas = rewards + gamma * next_values - values
    adv = xp.zeros_like(deltas)
    running = xp.zeros_like(deltas[0])
    for m in range(deltas.shape[0] - 1, -1, -1):
        running = deltas[m] + gamma * lam * running
        adv[m] = running
    return adv, adv + values


def ppo_update(state, cfg, lrs, rng):
    """Algorithm 4, lines 15–20: GAE over the stored rollout with the current critic, then
    PPO on its M·B transitions, and the buffer cleared. As written, one actor step (clip,
    entropy bonus) and one critic step on the GAE returns per rollout; with cfg.ppo_epochs
    passes of cfg.ppo_minibatches minibatches drawn from `rng`, one of each per minibatch
    (the usual PPO), with cfg.adv_norm on each minibatch's advantages. Returns the losses
    averaged over the steps taken. With cfg.td_control_variate every δ_m less
    γ·noise_control_variate (V's slope at X_m): the advantages keep their mean given each
    action, the step's noise, summed over d coordinates, mostly leaves them. Without
    cfg.readable each loss is a mean over chunks of rows (fastpaths.chunk_mean), and on a
    GPU GAE is one matrix product (gae_by_matmul)."""
    buf = state["buffer"]
    critic, actor = state["params"]["critic"], state["params"]["actor"]
    xp = xp_of(buf[0]["x"])
    M, B, d = len(buf), buf[0]["x"].shape[0], buf[0]["x"].shape[1]
    n_rows, k = M * B, cfg.ppo_minibatches
    X, A, logp_old, r = (xp.stack([entry[key] for entry in buf]) for key in ("x", "a", "logp", "r"))
    X, A, logp_old = X.reshape(n_rows, d), A.reshape(n_rows, d), logp_old.reshape(n_rows)  # time, then agent
    rows = n_rows if cfg.readable else chunk_rows(xp, B)                   # rows per call
    if cfg.td_control_variate:   # each δ less γ·noise_control_variate: take it from r
        def value_and_cv(p, x, a, x_next):   # V and its slope from one pass of the hidden layer
            v, grad = nets.critic_value_and_input_grad(p, x)
            return xp.stack([v, brownian_part(cfg, grad, x, a, x_next)], axis=1)
        X_next = xp.stack([entry["x_next"] for entry in buf]).reshape(n_rows, d)
        both = in_chunks(value_and_cv, (critic, X, A, X_next), rows)
        values, r = both[:, 0].reshape(M, B), r - cfg.problem.discount * both[:, 1].reshape(M, B)
    else:
        values = in_chunks(nets.critic_forward, (critic, X), rows).reshape(M, B)
    last = nets.critic_forward(critic, buf[-1]["x_next"])                   # V(X_M)
    next_values = xp.concatenate([values[1:], last[None]])                  # V(X_{m+1}) (M, B)
    advantages = gae if cfg.readable or xp is np else gae_by_matmul
    adv, returns = advantages(r, values, next_values, cfg.problem.discount, cfg.gae_lambda)
    adv, returns = adv.reshape(n_rows), returns.reshape(n_rows)
    clip = cfg.ppo_clip or math.inf                   # no clipping: ρ·A, the importance-weighted gradient
    totals = {"critic": 0.0, "actor": 0.0}
    for _ in range(cfg.ppo_epochs):
        order = rng.permutation(n_rows) if k > 1 else None
        for j in range(k):
            idx = slice(None) if order is None else order[j * n_rows // k:(j + 1) * n_rows // k]
            Xb, Ab, adv_b, ret_b, logp_b = X[idx], A[idx], adv[idx], returns[idx], logp_old[idx]
            if cfg.adv_norm:
                adv_b = (adv_b - adv_b.mean()) / (adv_b.std() + 1e-8)
            (loss_v, g_v), (loss_pi, g_pi) = concurrently(
                [(chunk_mean, nets.critic_loss_and_grad, (critic, Xb, ret_b), rows),
                 (chunk_mean, nets.ppo_loss_and_grad,
                  (actor, Xb, Ab, adv_b, logp_b, clip, cfg.ent_coef, cfg.std_floor), rows)],
                work=Xb.shape[0] * cfg.hidden_critic, in_order=cfg.readable)
            clip_and_adam(cfg, actor, g_pi, state["adam"]["actor"], lrs["actor"], cfg.grad_clip)
            clip_and_adam(cfg, critic, g_v, state["adam"]["critic"], lrs["critic"], cfg.grad_clip)
            totals["critic"], totals["actor"] = totals["critic"] + loss_v, totals["actor"] + loss_pi
    state["buffer"] = []
    return {name: total / (cfg.ppo_epochs * k) for name, total in totals.items()}


# ---------------------------------------------------------------------------------------
# The four trainers. Comments "L4–7" refer to the lines of the algorithm's box in the
# paper (Peng & Wang, arXiv:2501.00052, Algorithms 1–4; docs/benchmark.md).
# ---------------------------------------------------------------------------------------

def train_ac(cfg, state=None, run_dir=None, on_eval=None, until=None, on_step=None):
    """IH-MFCG-AC (Algorithm 1): Algorithm 2 without line 18, one agent, no target and no
    clipping, which is train_b with the paper preset's AC Config (batch = 1, target_every
    = 0, grad_clip = 0). So train_b runs it; a target or clipping then act as in B."""
    return train_b(cfg, state, run_dir, on_eval, until, on_step)


def train_b(cfg, state=None, run_dir=None, on_eval=None, until=None, on_step=None):
    """IH-MFCG-AC-B (Algorithm 2): B agents at once, a target critic copied every
    cfg.target_every steps, clipped actor and critic gradients. With B = 1 and neither,
    Algorithm 1 (train_ac)."""
    state = state if state is not None else init_state(cfg)              # L1–2
    loop = Loop(state, cfg, run_dir, on_eval, until, on_step)            # Ctrl-C, timing, checks
    for n in loop.steps():                                               # L3
        lrs, rng = learning_rates(cfg, n), training_rng(cfg, n)
        losses = score_update(state, cfg, state["x"], lrs, rng)          # L4–7
        state["field"] = langevin_refresh(state, cfg, rng)               # L8: pools on, m, m̃
        a, r, x_next = act_and_step(state, cfg, state["x"], state["field"], rng)  # L9–11
        losses.update(actor_critic_update(state, cfg, state["x"], a, r, x_next, lrs))  # L12–17
        state["x"] = restart_outside(cfg, x_next, rng) if cfg.restart_beyond else x_next
        if cfg.target_every and n % cfg.target_every == 0:               # L18
            refresh_target(state)
        if loop.end_step(losses):                                        # every cfg.eval_every steps,
            loop.record(evaluate(state, cfg))                            # compare with the closed form
        loop.checkpoint()                                                # every cfg.checkpoint_every
    return state


def train_m(cfg, state=None, run_dir=None, on_eval=None, until=None, on_step=None):
    """IH-MFCG-AC-M (Algorithm 3): each step permutes the agents (with cfg.antithetic,
    their pairs: agent_order) and runs the score, actor and critic updates minibatch by
    minibatch; score losses use Hutchinson probes; the Langevin pools are refreshed once
    per step when n % cfg.langevin_every == 0, and between refreshes the agents pay for
    the last refresh's means. With cfg.restart_beyond the agents out of the box start again
    once every minibatch has stepped (restart_outside)."""
    state = state if state is not None else init_state(cfg)              # L1–2
    loop = Loop(state, cfg, run_dir, on_eval, until, on_step)            # Ctrl-C, timing, checks
    b = cfg.minibatch
    for n in loop.steps():                                               # L3
        lrs, rng = learning_rates(cfg, n), training_rng(cfg, n)
        order = agent_order(cfg, rng)                                    # L4: permute
        x = state["x"][order]
        for j in range(cfg.batch // b):                                  # L5
            xb = x[j * b:(j + 1) * b]                                    # (b, d)
            losses = score_update(state, cfg, xb, lrs, rng)              # L6–9
            if j == 0 and n % cfg.langevin_every == 0:                   # L10: m, m̃
                state["field"] = langevin_refresh(state, cfg, rng)
            a, r, xb_next = act_and_step(state, cfg, xb, state["field"], rng)  # L11–13
            losses.update(actor_critic_update(state, cfg, xb, a, r, xb_next, lrs))  # L14–19
            x[j * b:(j + 1) * b] = xb_next
            loop.losses(losses)
        if cfg.antithetic:
            state["x"][order] = x      # every agent back in its row: pairs stay i, i + B/2
        else:
            state["x"] = x
        if cfg.restart_beyond:         # as in B: the updates above saw the true steps
            state["x"] = restart_outside(cfg, state["x"], rng)
        if cfg.target_every and n % cfg.target_every == 0:               # L21
            refresh_target(state)
        if loop.end_step():                                              # every cfg.eval_every steps,
            loop.record(evaluate(state, cfg))                            # compare with the closed form
        loop.checkpoint()                                                # every cfg.checkpoint_every
    return state


def agent_order(cfg, rng):
    """The order in which M's step visits the agents: a random permutation of the B rows,
    cut into minibatches of cfg.minibatch. With cfg.antithetic the pairs are permuted, not
    the agents: minibatch j holds pairs P_j (B/2 rows' indices, a random b/2 of them) as
    rows P_j then P_j + B/2, so each minibatch's rows i and i + b/2 are partners and its own
    normals (AntitheticNormals) keep every pair antithetic. Split pairs would leave each
    minibatch an unpaired sample of the population (docs/antithetic.md)."""
    if not cfg.antithetic:
        return rng.permutation(cfg.batch)
    half = cfg.batch // 2
    pairs = rng.permutation(half).reshape(cfg.batch // cfg.minibatch, cfg.minibatch // 2)
    return xp_of(pairs).concatenate([pairs, pairs + half], axis=1).reshape(cfg.batch)


def train_drl(cfg, state=None, run_dir=None, on_eval=None, until=None, on_step=None):
    """IH-MFCG-AC-DRL (Algorithm 4): transitions of B agents go into a rollout buffer;
    every cfg.rollout steps, GAE per agent along time, one critic step on the GAE returns
    and PPO (clip, entropy bonus) on the whole rollout, then the buffer is cleared.
    Algorithm 4's line 25 copies the critic into a target that none of its lines reads (its
    GAE bootstraps with V itself), so no target is kept and Config refuses one. With
    cfg.restart_beyond the agents out of the box start again once their rollout is used
    (a departure from the paper): a restart inside a rollout would join two trajectories
    in one GAE sum."""
    state = state if state is not None else init_state(cfg)              # L1–3
    loop = Loop(state, cfg, run_dir, on_eval, until, on_step)            # Ctrl-C, timing, checks
    for n in loop.steps():                                               # L4
        lrs, rng = learning_rates(cfg, n), training_rng(cfg, n)
        losses = score_update(state, cfg, state["x"], lrs, rng)          # L5–8
        state["field"] = langevin_refresh(state, cfg, rng)               # L9: m, m̃
        a, r, x_next, logp = act_and_step(state, cfg, state["x"], state["field"], rng,
                                          log_prob=True)                 # L10–12
        state["buffer"].append({"x": state["x"], "a": a, "r": r, "x_next": x_next, "logp": logp})  # L13
        state["x"] = x_next
        if (n + 1) % cfg.rollout == 0:                                   # L14
            losses.update(ppo_update(state, cfg, lrs, rng))              # L15–20
            if cfg.restart_beyond:   # between rollouts: GAE's trajectories stay unbroken
                state["x"] = restart_outside(cfg, state["x"], rng)
        if loop.end_step(losses):                                        # every cfg.eval_every steps,
            loop.record(evaluate(state, cfg))                            # compare with the closed form
        loop.checkpoint()                                                # every cfg.checkpoint_every
    return state


TRAINERS = {"ac": train_ac, "b": train_b, "m": train_m, "drl": train_drl}


def train(cfg, state=None, run_dir=None, on_eval=None, until=None, on_step=None):
    """Run cfg.algo's trainer from `state` (or from scratch) up to step `until` (default:
    cfg.steps, the end of the run; the schedule always spans cfg.steps). Returns the state.
    With `run_dir` it checkpoints to run_dir/checkpoint.npz; `on_eval(record)` is called
    with each evaluation record, `on_step(state)` after every step (progress display)."""
    return TRAINERS[cfg.algo](cfg, state, run_dir, on_eval, until, on_step)


def load_checkpoint(path, xp=None):
    """(state, cfg) from the checkpoint train(..., run_dir=...) wrote (rundir.save_checkpoint),
    to resume bit for bit with train(cfg, state). Not a checkpoint: one line of ValueError."""
    return read_checkpoint(path, Config, MeanField, xp)


# ---------------------------------------------------------------------------------------
# Evaluation against the closed form
# ---------------------------------------------------------------------------------------

def fresh_samples(state, cfg, purpose):
    """Fresh samples of both score networks' laws, as the paper evaluates: chains from
    N(0, I) (cfg.eval_chains of them, by default the pools' k = cfg.n_samples),
    cfg.eval_langevin_steps iterations each, on their own random stream keyed by (seed,
    step, purpose), so evaluating never changes training. Returns (rng, global pool, local
    pool); the caller draws whatever else it needs from the same rng."""
    xp, dtype = xp_of(state["x"]), state["x"].dtype
    rng = make_rng((cfg.seed, state["step"], purpose), xp)
    nets_ = [state["params"]["score_global"], state["params"]["score_local"]]
    chains = cfg.eval_chains or cfg.n_samples
    starts = [rng.standard_normal((chains, cfg.problem.dim), dtype=dtype) for _ in nets_]
    return (rng, *sample_pools(nets_, starts, cfg.eval_langevin_steps, cfg.eps_langevin, rng, cfg.readable))


def evaluate(state, cfg):
    """A flat dict of named numbers comparing the learned solution with the closed form.

    global_/local_ mean, std      from k fresh Langevin samples (from N(0, I), as the paper)
    ..._mean_density, _std_density from the score read-out, no sampler (d = 1; else nan)
    control_rmse                  actor mean vs α̂ over x ~ the limiting law
    control_rmse_mfg              actor mean vs the non-cooperative control
    control_slope, _intercept     least-squares line through the actor mean (d = 1; α̂ is
                                  −2Γ2 x + 2Γ2 m*); nan for d > 1
    control_rmse_at_mfg,          the same against the non-cooperative control, over that
    control_slope_at_mfg          equilibrium's own limiting law N(m_mfg, std²), where a
                                  population at m_mfg lives (the same draws shifted)
    agents_mean, agents_std       the simulated population itself (what the scores learn)
    pool_global_/pool_local_mean, _std  the persistent training pools: their means are the m
                                  and m̃ the agents pay for, so a runaway pool shows here first
    value_rmse, value_rmse_paper  −critic vs the cost-to-go of α̂, vs the appendix formula
    mean_error, mean_error_mfg    |local_mean − m*|, |local_mean − m_mfg| (Euclidean)
    For d > 1 also each coordinate on its own (coordinate_metrics): the worst and the RMS
    over coordinates of the local mean's distance to each equilibrium, the worst
    coordinate's control error, and the control's Jacobian against −2Γ2·I.
    """
    pb, sol = cfg.problem, cfg.problem.solution()
    xp, dtype = xp_of(state["x"]), state["x"].dtype
    rng, *pools = fresh_samples(state, cfg, STREAM_EVAL)
    out, samples = {}, dict(zip(("global", "local"), map(to_numpy, pools)))
    for tag, s in samples.items():  # each law from its samples and, for d = 1, from its score network
        out[f"{tag}_mean"], out[f"{tag}_std"] = _mean_and_std(s)
        read = {"mean": math.nan, "std": math.nan}
        if pb.dim == 1:
            p = state["params"][f"score_{tag}"]
            read = density_from_score(lambda g: nets.score_forward(p, xp.asarray(g, dtype=dtype)),
                                      *readout_range(sol, s), n=4001)
        out[f"{tag}_mean_density"], out[f"{tag}_std_density"] = read["mean"], read["std"]
    z = to_numpy(rng.standard_normal((cfg.eval_samples, pb.dim), dtype=dtype)).astype(np.float64)
    x_eval, x_nash = sol.sample(z), sol.sample(z, nash=True)   # (n, d) ~ each equilibrium's law
    actions = {"mfcg": mean_action(state, x_eval), "nash": mean_action(state, x_nash)}
    out.update(control_metrics(cfg, x_eval, x_nash, actions))
    for tag, key in (("agents", "x"), ("pool_global", "pool_global"), ("pool_local", "pool_local")):
        out[f"{tag}_mean"], out[f"{tag}_std"] = _mean_and_std(to_numpy(state[key]).astype(np.float64))
    neg_v = -_at(state, lambda x: nets.critic_forward(state["params"]["critic"], x), x_eval)  # cost-to-go
    neg_v = neg_v / reward_scale(cfg)                         # in the problem's units
    out["value_rmse"] = _rmse(neg_v, sol.value(x_eval))
    out["value_rmse_paper"] = _rmse(neg_v, sol.value_paper(x_eval))
    out["mean_error"] = float(np.linalg.norm(samples["local"].mean(axis=0) - sol.mean))
    out["mean_error_mfg"] = float(np.linalg.norm(samples["local"].mean(axis=0) - sol.mean_mfg))
    if pb.dim > 1:
        out.update(coordinate_metrics(cfg, samples["local"], x_eval, x_nash, actions))
    return out


def coordinate_metrics(cfg, local, x_eval, x_nash, actions):
    """Each coordinate judged on its own (d > 1), so that a vector's norm, which grows with
    √d, hides no coordinate: from the local law's samples local (k, d) and the actor's mean
    actions (mean_action) actions["mfcg"] over x_eval ~ the MFCG law and actions["nash"]
    over x_nash ~ the Nash law (n, d):

    mean_error_worst, _rms        max and RMS over coordinates i of |m̃_i − m*_i|
    mean_error_mfg_worst, _rms    the same against m_mfg
    control_rmse_worst            max over i of the RMSE of action i against α̂_i, over x_eval
    control_rmse_at_mfg_worst     max over i against the Nash control, over x_nash
    jacobian_diag_error           max over i of |J_ii − Ĵ_ii|, J the least-squares Jacobian
                                  of the mean action over x_eval, Ĵ α̂'s (−2Γ2·I on the
                                  isotropic problem)
    jacobian_offdiag              max over i ≠ j of |J_ij − Ĵ_ij|: on the isotropic problem one
                                  coordinate leaking into another's action
    """
    sol, a, a_nash = cfg.problem.solution(), actions["mfcg"], actions["nash"]
    out = {}
    for tag, target in (("", sol.mean), ("_mfg", sol.mean_mfg)):
        gap = np.abs(local.astype(np.float64).mean(axis=0) - target)
        out[f"mean_error{tag}_worst"], out[f"mean_error{tag}_rms"] = float(gap.max()), float(np.sqrt(np.mean(gap ** 2)))
    out["control_rmse_worst"] = float(np.sqrt(np.mean((a - sol.control(x_eval)) ** 2, axis=0)).max())
    out["control_rmse_at_mfg_worst"] = float(np.sqrt(np.mean((a_nash - sol.control_mfg(x_nash)) ** 2, axis=0)).max())
    design = np.hstack([x_eval, np.ones((len(x_eval), 1))])
    fit, _, rank, _ = np.linalg.lstsq(design, a, rcond=None)
    if rank < design.shape[1]:  # x_eval spans no d dimensions (a coordinate with σ = 0): no Jacobian
        return {**out, "jacobian_diag_error": math.nan, "jacobian_offdiag": math.nan}
    gap = fit[:-1].T - sol.jacobian()                                    # (d, d): J_ij = ∂a_i/∂x_j
    out["jacobian_diag_error"] = float(np.abs(np.diag(gap)).max())
    out["jacobian_offdiag"] = float(np.abs(gap - np.diag(np.diag(gap))).max())
    return out


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


MARGINALS = 4  # in d > 1 dimensions, the coordinates whose marginal laws a run keeps
KEPT_SAMPLES = 1000  # of each law's fresh samples, a run keeps the first these many (the figures'
                     # histograms; 4,000 evaluation chains would make them most of a run's file)


def final_curves(state, cfg, n_grid=201):
    """The arrays the report's figures need, as NumPy float64: grid (n_grid,), m* ± 6 std of
    the limiting law (the same for every run, so seeds can be averaged), with neg_critic
    (−V as the critic outputs it: per coordinate with cfg.per_coordinate) and actor_mean on
    it; global_/local_samples (k,), the first KEPT_SAMPLES fresh Langevin samples of the two
    score networks (fresh_samples, on their own stream); density_grid (n_grid,), that range
    widened to cover the samples, with global_/local_density read off the score networks.

    In d > 1 dimensions: the samples of the first MARGINALS coordinates, (k, c); local_means
    (d,), every coordinate's mean of all the local samples; the critic and the first action
    along coordinate 0 (over its marginal's m* ± 6 std) with the others at m*; no density
    read-out (it is 1-d)."""
    pb, sol = cfg.problem, cfg.problem.solution()
    xp, dtype = xp_of(state["x"]), state["x"].dtype
    pools = [to_numpy(pool).astype(np.float64) for pool in fresh_samples(state, cfg, STREAM_CURVES)[1:]]
    m0, s0 = np.atleast_1d(sol.mean)[0], np.atleast_1d(sol.std)[0]   # coordinate 0's law
    grid = np.linspace(m0 - 6 * s0, m0 + 6 * s0, n_grid)  # same for every run
    points = np.full((n_grid, pb.dim), sol.mean)
    points[:, 0] = grid
    g = xp.asarray(points, dtype=dtype)
    out = {"grid": grid,
           "neg_critic": -to_numpy(nets.critic_forward(state["params"]["critic"], g)).astype(np.float64),
           "actor_mean": to_numpy(nets.actor_forward(state["params"]["actor"], g)[0][:, 0]).astype(np.float64)}
    kept = dict(zip(("global", "local"), (pool[:KEPT_SAMPLES] for pool in pools)))
    if pb.dim > 1:
        out.update({f"{tag}_samples": pool[:, :MARGINALS] for tag, pool in kept.items()})
        out["local_means"] = pools[1].mean(axis=0)   # over all the samples, not only those kept
        return out
    out.update({f"{tag}_samples": pool[:, 0] for tag, pool in kept.items()})
    lo, hi = readout_range(sol, out["global_samples"], out["local_samples"], width=6.0)
    out["density_grid"] = np.linspace(lo, hi, n_grid)
    for tag in ("global", "local"):
        p = state["params"][f"score_{tag}"]
        out[f"{tag}_density"] = density_from_score(
            lambda z, p=p: nets.score_forward(p, xp.asarray(z, dtype=dtype)), lo, hi, n_grid)["density"]
    return out


def _mean_and_std(a):
    """A population a (n, d)'s mean (for d > 1 the norm of its mean) and mean std over coordinates."""
    mean = float(np.linalg.norm(a.mean(axis=0))) if a.shape[1] > 1 else float(a.mean())
    return mean, float(a.std(axis=0).mean())


def mean_action(state, x):
    """The actor's mean action at x (n, d), NumPy float64 (_at)."""
    return _at(state, lambda z: nets.actor_forward(state["params"]["actor"], z)[0], x)


def control_metrics(cfg, x_eval, x_nash, actions):
    """The actor's mean action against the equilibria's controls, RMSE, with (d = 1) the
    least-squares line through it: actions["mfcg"] over x_eval (n, d) ~ the MFCG limiting
    law against α̂ and the non-cooperative control −2Γ2(x − m_mfg); actions["nash"] over
    x_nash ~ that equilibrium's own law N(m_mfg, std²) against the latter. A population at
    m_mfg lives there, 1.5 std away from the MFCG law, where its actor has seen few states."""
    sol, one_d = cfg.problem.solution(), cfg.problem.dim == 1
    a = actions["mfcg"]
    slope, intercept = np.polyfit(x_eval[:, 0], a[:, 0], 1) if one_d else (math.nan, math.nan)
    out = {"control_rmse": _rmse(a, sol.control(x_eval)), "control_rmse_mfg": _rmse(a, sol.control_mfg(x_eval)),
           "control_slope": float(slope), "control_intercept": float(intercept)}
    if not np.all(np.isfinite(sol.mean_mfg)):
        return {**out, "control_rmse_at_mfg": math.nan, "control_slope_at_mfg": math.nan}
    a = actions["nash"]
    out["control_rmse_at_mfg"] = _rmse(a, sol.control_mfg(x_nash))
    out["control_slope_at_mfg"] = float(np.polyfit(x_nash[:, 0], a[:, 0], 1)[0]) if one_d else math.nan
    return out


def _at(state, fn, x):
    """fn(x) for x (n, d), NumPy float64, computed in the training dtype on the state's
    device; returned as NumPy float64."""
    return to_numpy(fn(xp_of(state["x"]).asarray(x, dtype=state["x"].dtype))).astype(np.float64)


def _rmse(a, b):
    return float(np.sqrt(np.mean((a - b) ** 2)))
