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
