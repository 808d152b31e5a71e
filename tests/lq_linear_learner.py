"""A minimal learner for the LQ benchmark whose function classes are exact, so it tests
the theory of the two equilibria without deep-network noise (docs/benchmark.md §3).

    policy   a ~ N(−(θ1 x + θ0), s²)                 linear-Gaussian; α̂ is in this class
    critic   V(x) = w2 x² + w1 x + w0                  quadratic; the LQ value is in this class
    means    m  ← m  + κ_slow (mean(X) − m)            global: slow (the other groups)
             m̃ ← m̃ + κ_fast (mean(X) − m̃)            local: fast (the agent's own group)

With `private` = κ each agent keeps its own m̃ᵢ ← m̃ᵢ + κ (xᵢ − m̃ᵢ), a moving average of its
own past states, as a single agent's score network does in AC (Algorithm 1, B = 1); see
`settled_mean_private`.

Each step, for all agents at once: act, pay f(x, m, m̃, a)Δt (plus x·E[∂f/∂m̃]Δt with the
mean-field correction, the expectation over the agents), move by Euler–Maruyama, and update
    critic  w ← w + lr_c · mean(δ φ(x)),             δ = r + γ V(x') − V(x), φ = (x², x, 1)
    actor   θ ← θ + lr_a · mean(δ ∇_θ log π(a|x)),   ∇_θ log π = ((a − μ)/s²)·(−x, −1).
"""
import numpy as np

from autograd_lite import lr_factor
from mfcg import LQProblem, LQSolution, mf_correction


def settle_mean(mf, seed, steps=30_000, n_agents=2048, lr_actor=2.0, lr_critic=3.0,
                kappa_slow=0.01, kappa_fast=0.05, explore=0.3, problem=None, private=None,
                private_global=None):
    """Run the learner; return (population mean averaged over the last third, θ1, θ0). With
    `private_global` = κ each agent's m is its own moving average too, as in AC."""
    pb = problem or LQProblem()
    rng = np.random.default_rng(seed)
    dt, gamma, sigma = pb.dt, pb.discount, pb.sigma
    x = rng.standard_normal(n_agents)
    theta = np.zeros(2)                  # (θ1, θ0)
    w = np.zeros(3)                      # (w2, w1, w0)
    m = m_tilde = 0.0
    if private is not None:
        m_tilde = x[:, None].copy()      # each agent's own m̃ᵢ, (N, 1), from its first state
    if private_global is not None:
        m = x[:, None].copy()            # each agent's own mᵢ
    tail = []
    for n in range(steps):
        mu = -(theta[0] * x + theta[1])
        a = mu + explore * rng.standard_normal(n_agents)
        col = x[:, None]
        cost = pb.running_cost(col, m, m_tilde, a[:, None])
        if mf:
            grad = pb.dcost_dm_tilde(col, m_tilde).mean(axis=0)   # E_{x'}[∂f/∂m̃], (1,)
            cost = cost + mf_correction(col, grad)
        r = -cost * dt
        x_next = x + a * dt + sigma * np.sqrt(dt) * rng.standard_normal(n_agents)
        phi, phi_next = np.stack([x * x, x, np.ones_like(x)]), np.stack([x_next * x_next, x_next, np.ones_like(x)])
        delta = r + gamma * (w @ phi_next) - w @ phi
        w += lr_critic * (phi * delta).mean(axis=1)
        score = (a - mu) / explore ** 2
        theta += lr_actor * np.array([np.mean(delta * score * -x), np.mean(delta * score * -1.0)])
        if private_global is None:
            m += kappa_slow * (x.mean() - m)
        else:
            m += private_global * (x[:, None] - m)
        if private is None:
            m_tilde += kappa_fast * (x.mean() - m_tilde)
        else:
            m_tilde += private * (x[:, None] - m_tilde)
        x = x_next
        if n >= 2 * steps // 3 and n % 100 == 0:
            tail.append(x.mean())
    return float(np.mean(tail)), float(theta[0]), float(theta[1])


def settled_mean_private(kappa, problem=None, kappa_global=0.0):
    """Where an agent whose m̃ is a moving average of rate κ of its *own* states comes to
    rest (docs/benchmark.md §3). Its own state j steps ago moves m̃ by h_j = κ(1 − κ)^{j−1},
    so its TD return carries the fraction w = Σ_{j≥1} γ^j h_j = κγ / (1 − γ(1 − κ)) of the
    group's (Lions) term, and it settles at LQSolution.mean_own_influence(w); with its m a
    moving average of rate kappa_global of its own states too, at μ(w, w_global). Returns
    (w, μ)."""
    pb = problem or LQProblem()
    weight = lambda k: k * pb.discount / (1.0 - pb.discount * (1.0 - k))  # noqa: E731
    return weight(kappa), LQSolution.of(pb).mean_own_influence(weight(kappa), weight(kappa_global))


def loop_gains(mf, problem=None):
    """(g_global, g_local): how far a shift of the ideal agent's estimate of m, and of m̃,
    moves the centre its best response pulls it to, c(m, m̃) = (c3c4 + c1c2·m + (c̃1c̃2 − L)·m̃)/K,
    with L the half Lions term the correction adds (0 without it). Their sum is the loop's
    gain g: 0.60 with the correction, 0.87 without."""
    pb = problem or LQProblem()
    return pb.c1 * pb.c2 / pb.K, (pb.c1_tilde * pb.c2_tilde - (pb.lions if mf else 0.0)) / pb.K


def ideal_single_agent(mf, steps, kappa, kappa_global=None, runs=1000, evaluations=40, seed=0, problem=None,
                       peak=1.0, final=0.05):
    """A single agent that knows its best response and learns nothing else: the bound on
    what any AC can do when its estimates of m and m̃ are moving averages of its own states
    (docs/single-agent.md). Each run is one agent; `runs` of them in parallel.

    The agent's control is the exact best response to its current estimates, frozen: a
    mean-reverting drift −2Γ2 (x − c) toward c(m, m̃) = (c3c4 + c1c2·m + (c̃1c̃2 − L)·m̃)/K,
    with L the half Lions term the correction adds (L = 0 without it), so that c(μ, μ) = μ at
    m* with the correction and at m_mfg without. The estimates follow its own states,
        m̃ ← m̃ + κₙ (x − m̃),   m ← m + κ_gₙ (x − m),   κₙ = κ · autograd_lite.lr_factor(n),
    the schedule of a learning rate (peak, final), starting at 0 as the warm-started score
    networks do, the agent from N(0, 1). A feedback loop: the estimates move the centre by
    the gain g = (c1c2 + c̃1c̃2 − L)/K (0.60 with the correction, 0.87 without), which
    amplifies their sampling error by 1/(1 − g).

    kappa="average": both estimates the average of the whole trajectory so far, weighted for
    the loop, κₙ = min(1, 1/((1 − g)(n + 1))) with no schedule: then m̃ₙ − μ is the average
    of the agent's fluctuations times 1/(1 − g), the least error any estimate made of one
    trajectory can have (average_memory_sd).

    Returns (steps_at, local): the steps at which m̃ was read, `evaluations` evenly spaced,
    and m̃ there, (evaluations, runs)."""
    pb = problem or LQProblem()
    sol = LQSolution.of(pb)
    gain_global, gain_local = loop_gains(mf, pb)
    kappa_global = kappa if kappa_global is None else kappa_global
    average = kappa == "average"
    if average and kappa_global != "average":
        raise ValueError("kappa='average' is for both estimates: leave kappa_global out")
    rng = np.random.default_rng(seed)
    x, m, m_tilde = rng.standard_normal(runs), np.zeros(runs), np.zeros(runs)
    pull, noise = 2.0 * sol.gamma2 * pb.dt, pb.sigma * np.sqrt(pb.dt)
    every = steps // evaluations
    steps_at, local = [], []
    for n in range(steps):
        if average:
            rate = rate_global = min(1.0, 1.0 / ((1.0 - gain_global - gain_local) * (n + 1)))
        else:
            f = lr_factor(n, steps, peak=peak, final=final)
            rate, rate_global = kappa * f, kappa_global * f
        centre = pb.c3 * pb.c4 / pb.K + gain_global * m + gain_local * m_tilde
        x_next = x - pull * (x - centre) + noise * rng.standard_normal(runs)
        m_tilde += rate * (x - m_tilde)
        m += rate_global * (x - m)
        x = x_next
        if (n + 1) % every == 0:
            steps_at.append(n + 1)
            local.append(m_tilde.copy())
    return np.array(steps_at), np.array(local)


def average_memory_sd(mf, n, problem=None):
    """The sd of m̃ across runs after n steps of the ideal agent with kappa="average": its
    states fluctuate about their centre as x ← x − p(x − c) + s·z (p = 2Γ2Δt, s = σ√Δt),
    whose average over n steps has variance s²/(p²n) (the stationary variance s²/(2p − p²)
    times the autocorrelations' sum (2 − p)/p), and the loop multiplies it by 1/(1 − g):

        sd = s / (p (1 − g) √n)

    No estimate of the agent's mean made of n of its own states does better (the average is
    the efficient one), so no single agent whose estimates are learned from its own states
    can rest nearer μ than this (docs/single-agent.md)."""
    pb = problem or LQProblem()
    gain = sum(loop_gains(mf, pb))
    pull = 2.0 * LQSolution.of(pb).gamma2 * pb.dt
    return pb.sigma * np.sqrt(pb.dt) / (pull * (1.0 - gain) * np.sqrt(n))


# The rows of docs/results/single-bound/BOUND.md: (variant, steps, κ), 1,000 agents each.
BOUND_ROWS = [("mf", 200_000, k) for k in (5e-5, 7e-5, 1e-4, 2e-4, 3e-4, 1e-3)] + \
             [("mf", 500_000, k) for k in (2e-5, 3e-5, 5e-5)] + [("mf", 1_000_000, k) for k in (1e-5, 2e-5, 3e-5)] + \
             [("plain", 200_000, k) for k in (1e-4, 2e-4, 1e-3)] + [("plain", 2_000_000, k) for k in (1e-5, 3e-5, 1e-4)] + \
             [("mf", n, "average") for n in (200_000, 400_000)] + [("plain", n, "average") for n in (200_000, 2_000_000)]


def bound_table(rows=BOUND_ROWS, runs=1000, final=0.05):
    """The ideal single agent's rate of success by memory and steps, as a Markdown table:
    settled as `report` judges a run (every evaluation of the last quarter within 0.05 of
    the equilibrium the variant aims at; the control is exact), on average (the quarter's
    mean within 0.05), and how much the late local mean varies across runs and within one."""
    sol = LQSolution.of(LQProblem())
    lines = ["| variant | steps | κ | memory at the end, steps (1/(κ·final)) | settled | on average | late local mean "
             "| its sd across runs | sd within a run |", "|---|---|---|---|---|---|---|---|---|"]
    for variant, steps, kappa in rows:
        at, local = ideal_single_agent(variant == "mf", steps, kappa, runs=runs, final=final)
        late = local[at > 0.75 * steps]
        target = sol.mean if variant == "mf" else sol.mean_mfg
        settled = np.all(np.abs(late - target) < 0.05, axis=0).mean()
        average = np.mean(np.abs(late.mean(axis=0) - target) < 0.05)
        memory = "the whole run" if kappa == "average" else f"{1 / (kappa * final):,.0f}"
        lines.append(f"| {variant} | {steps:,} | {kappa if kappa == 'average' else f'{kappa:g}'} | {memory} | {settled:.1%} | {average:.1%} "
                     f"| {late.mean():.3f} | {late.mean(axis=0).std():.3f} | {late.std(axis=0).mean():.3f} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":   # make single-bound: PYTHONPATH=. python tests/lq_linear_learner.py, about 10 minutes
    print("# The ideal single agent: how often it settles, by memory and steps\n\n"
          "One agent per run, 1,000 runs a row (seed 0), playing the exact best response to its estimates of m "
          "and m̃, each a moving average of its own states at rate κ times the learning-rate schedule (×1, then "
          "down to ×0.05 over the last 90 %; `ideal_single_agent` in tests/lq_linear_learner.py). Judged as "
          "`report` judges AC: the local estimate at the last quarter's 10 of 40 evaluations. κ = average: both "
          "estimates the average of the whole run so far, weighted for the loop (the least error one trajectory "
          "allows; `average_memory_sd`).\n")
    print(bound_table(), end="")
