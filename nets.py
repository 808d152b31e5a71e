"""nets: the actor, the critic and the score network, with hand-derived gradients.

Networks are pure functions of a parameter dict (`W1, b1, ...`, weights stored as
(inputs, outputs) so a layer is `x @ W + b`). Every loss returns `(loss, grads)` with
`grads` keyed exactly like the parameters. Shapes: N batch, d state dim, k action dim,
H hidden width.

    actor    x (N,d) → h = tanh(x W1 + b1) (N,H) → mean = h Wm + bm (N,k)
                                              → std  = softplus(h Ws + bs) + floor (N,k)
    critic   x (N,d) → tanh(x W1 + b1) (N,H) → W2, b2 → V (N,)
    score    x (N,d) → tanh(x W1 + b1) (N,H) → W2, b2 → s (N,d)   (s ≈ ∇ₓ log p)

All three share the hidden layer h = tanh(x W1 + b1): hidden_forward, hidden_backward.
"""
import math

from autograd_lite import (
    DEFAULT_DTYPE, affine_backward, affine_forward, check_array, gaussian_entropy_backward,
    gaussian_entropy_forward, gaussian_logprob_backward, gaussian_logprob_forward, get_xp,
    matmul, softplus_backward, softplus_forward, sum_rows, tanh_backward, tanh_forward, xp_of)

STD_FLOOR = 1e-5  # the paper's floor on the softplus std head: the policy never collapses to a point
# Every actor function takes `std_floor` (default STD_FLOOR); the trainers pass Config.std_floor.
MAX_LOG_RATIO = 20.0  # PPO: log π − log π_old is capped here before exp (float32-safe)


# ---------------------------------------------------------------------------------------
# Initialisation (PyTorch's nn.Linear default: U(−1/√fan_in, 1/√fan_in) for W and b)
# ---------------------------------------------------------------------------------------

def _linear(rng, n_in, n_out, dtype, xp):
    """One layer's W (n_in, n_out) and b (n_out,), drawn on the host, placed on xp."""
    bound = 1.0 / math.sqrt(n_in)
    W = rng.uniform(-bound, bound, size=(n_in, n_out)).astype(dtype)
    b = rng.uniform(-bound, bound, size=(n_out,)).astype(dtype)
    xp = xp or get_xp()
    return xp.asarray(W), xp.asarray(b)


def init_actor(d, k, rng, hidden=64, dtype=DEFAULT_DTYPE, xp=None):
    """Actor parameters W1 (d,H), b1 (H,), Wm (H,k), bm (k,), Ws (H,k), bs (k,).

    `rng` is a NumPy Generator (initialisation is drawn on the host, so every backend
    starts from the same numbers); arrays are placed on `xp` (default: the backend)."""
    p = {}
    p["W1"], p["b1"] = _linear(rng, d, hidden, dtype, xp)
    p["Wm"], p["bm"] = _linear(rng, hidden, k, dtype, xp)
    p["Ws"], p["bs"] = _linear(rng, hidden, k, dtype, xp)
    return p


def init_critic(d, rng, hidden=128, dtype=DEFAULT_DTYPE, xp=None):
    """Critic parameters W1 (d,H), b1 (H,), W2 (H,1), b2 (1,)."""
    (W1, b1), (W2, b2) = _linear(rng, d, hidden, dtype, xp), _linear(rng, hidden, 1, dtype, xp)
    return {"W1": W1, "b1": b1, "W2": W2, "b2": b2}


def init_score(d, rng, hidden=128, dtype=DEFAULT_DTYPE, xp=None):
    """Score-network parameters W1 (d,H), b1 (H,), W2 (H,d), b2 (d,)."""
    (W1, b1), (W2, b2) = _linear(rng, d, hidden, dtype, xp), _linear(rng, hidden, d, dtype, xp)
    return {"W1": W1, "b1": b1, "W2": W2, "b2": b2}


# ---------------------------------------------------------------------------------------
# The hidden layer every network starts with: h = tanh(x W1 + b1)
# ---------------------------------------------------------------------------------------

def hidden_forward(p, x):
    """Check x (N,d) against W1 (d,H), then return h = tanh(x W1 + b1), shape (N,H)."""
    check_array("x", x, 2, (None, p["W1"].shape[0]))
    return tanh_forward(affine_forward(x, p["W1"], p["b1"]))  # (N, H)


def hidden_backward(p, x, h, dh, dz=None):
    """Backpropagate dL/dh (N,H) through h = hidden_forward(p, x); return dW1 (d,H), db1 (H,).
    dz (N,H), when given, is an extra gradient at the pre-activation z = x W1 + b1, added
    after the tanh (the score-matching trace reaches z through g = 1 − h², not through h)."""
    dpre = tanh_backward(dh, h)                             # dL/dz = dL/dh ⊙ (1 − h²)  (N, H)
    if dz is not None:
        dpre = dpre + dz                                    # (N, H)
    _, dW1, db1 = affine_backward(dpre, x, p["W1"])         # dW1 = xᵀ dL/dz, db1 = Σₙ dL/dz
    return dW1, db1


# ---------------------------------------------------------------------------------------
# Actor: a diagonal Gaussian policy
# ---------------------------------------------------------------------------------------

def actor_forward(p, x, std_floor=STD_FLOOR):
    """Return mean (N,k), std (N,k) and the cache the backward pass needs.
    std = softplus(h Ws + bs) + std_floor; the floor is a constant (no gradient)."""
    h = hidden_forward(p, x)                                # (N, H)
    mean = affine_forward(h, p["Wm"], p["bm"])              # (N, k)
    zs = affine_forward(h, p["Ws"], p["bs"])                # (N, k)
    std = softplus_forward(zs) + std_floor                  # (N, k)
    return mean, std, (x, h, zs)


def actor_backward(p, cache, dmean, dstd):
    """Backpropagate dL/dmean, dL/dstd (N,k) to every actor parameter."""
    x, h, zs = cache
    dzs = softplus_backward(dstd, zs)                       # (N, k)
    dh_m, dWm, dbm = affine_backward(dmean, h, p["Wm"])
    dh_s, dWs, dbs = affine_backward(dzs, h, p["Ws"])
    dW1, db1 = hidden_backward(p, x, h, dh_m + dh_s)        # the two heads' dL/dh add up
    return {"W1": dW1, "b1": db1, "Wm": dWm, "bm": dbm, "Ws": dWs, "bs": dbs}


def actor_sample(p, x, rng, std_floor=STD_FLOOR, log_prob=False):
    """a = mean + std ⊙ z, z ~ N(0, I), drawn with `rng` (a stream of x's backend). With
    log_prob, returns (a, log π(a|x)): the same numbers actor_log_prob would give."""
    mean, std, _ = actor_forward(p, x, std_floor)
    z = rng.standard_normal(mean.shape, dtype=mean.dtype)
    a = mean + std * z
    return (a, gaussian_logprob_forward(a, mean, std)) if log_prob else a


def actor_log_prob(p, x, a, std_floor=STD_FLOOR):
    """log π(a|x), shape (N,)."""
    mean, std, _ = actor_forward(p, x, std_floor)
    check_array("a", a, 2, (x.shape[0], mean.shape[1]))
    return gaussian_logprob_forward(a, mean, std)


def actor_entropy(p, x, std_floor=STD_FLOOR):
    """Entropy of π(·|x), shape (N,)."""
    _, std, _ = actor_forward(p, x, std_floor)
    return gaussian_entropy_forward(std)


def actor_loss_and_grad(p, x, a, adv, std_floor=STD_FLOOR):
    """Policy-gradient loss L = −mean(adv · log π(a|x)) and its gradient.

    x (N,d), a (N,k), adv (N,) — one advantage per sample, treated as a constant. adv
    must be 1-d: an (N,1) advantage against (N,) log-probabilities would broadcast to
    (N,N) and turn the loss into −mean(adv)·mean(log π), which is not a policy gradient.
        dL/dlog πₙ = −advₙ / N
    """
    mean, std, cache = actor_forward(p, x, std_floor)
    n = x.shape[0]
    check_array("a", a, 2, (n, mean.shape[1]))
    check_array("adv", adv, 1, (n,))
    adv = adv.astype(x.dtype, copy=False)
    logp = gaussian_logprob_forward(a, mean, std)           # (N,)
    loss = -(adv * logp).mean()
    dmean, dstd = gaussian_logprob_backward(-adv / n, a, mean, std)
    return loss, actor_backward(p, cache, dmean, dstd)


def actor_pathwise_loss_and_grad(p, x, a, q_grad, std_floor=STD_FLOOR):
    """The pathwise (reparameterised) actor loss and its gradient: the action a = mean +
    std ⊙ ε is differentiated through, with q_grad (N,k) = ∂Q/∂a at the action taken, a
    constant (mfcg.action_value_gradient: the reward's and the next state's value's slope).

        L = −mean(Σ_k q_gradₙₖ · aₙₖ),   ε = (a − mean) / std
        dL/dmean = −q_grad / N,   dL/dstd = −q_grad ⊙ ε / N
    Unlike actor_loss_and_grad, each output's gradient is its own coordinate's slope of Q:
    no scalar advantage that carries every coordinate's noise."""
    mean, std, cache = actor_forward(p, x, std_floor)
    n = x.shape[0]
    check_array("a", a, 2, (n, mean.shape[1]))
    check_array("q_grad", q_grad, 2, (n, mean.shape[1]))
    q_grad = q_grad.astype(x.dtype, copy=False)
    eps = (a - mean) / std                                  # the normals a was drawn with
    loss = -(q_grad * a).sum(axis=1).mean()
    dmean = -q_grad / n                                     # (N, k)
    return loss, actor_backward(p, cache, dmean, dmean * eps)


def ppo_loss_and_grad(p, x, a, adv, logp_old, clip, ent_coef, std_floor=STD_FLOOR):
    """Clipped PPO surrogate with entropy bonus, and its gradient.

        ρ = exp(log π(a|x) − logp_old)
        L = −mean(min(ρ A, clip(ρ, 1 − c, 1 + c) A)) − ent_coef · mean(H[π(·|x)])

    Gradient of the surrogate term in log π: −ρA/N where the unclipped term is the
    minimum, and 0 where the clipped one is (A > 0 and ρ > 1 + c, or A < 0 and ρ < 1 − c).
    Entropy: dL/dσ = −ent_coef / (N σ). log ρ is capped at MAX_LOG_RATIO before exp.
    """
    mean, std, cache = actor_forward(p, x, std_floor)
    n = x.shape[0]
    check_array("a", a, 2, (n, mean.shape[1]))
    check_array("adv", adv, 1, (n,))
    check_array("logp_old", logp_old, 1, (n,))
    xp = xp_of(x)
    adv, logp_old = adv.astype(x.dtype, copy=False), logp_old.astype(x.dtype, copy=False)
    clip, ent_coef = float(clip), float(ent_coef)
    logp = gaussian_logprob_forward(a, mean, std)           # (N,)
    # cap log ρ at MAX_LOG_RATIO so exp cannot overflow (then ρ·0 would be nan); beyond
    # e^20 the sample is far outside the clip range anyway
    ratio = xp.exp(xp.minimum(logp - logp_old, MAX_LOG_RATIO))  # (N,)
    surr = xp.minimum(ratio * adv, xp.clip(ratio, 1.0 - clip, 1.0 + clip) * adv)
    ent = gaussian_entropy_forward(std)                     # (N,)
    loss = -surr.mean() - ent_coef * ent.mean()
    clipped = ((adv > 0) & (ratio > 1.0 + clip)) | ((adv < 0) & (ratio < 1.0 - clip))
    dlogp = xp.where(clipped, 0.0, -ratio * adv / n).astype(x.dtype)
    dmean, dstd = gaussian_logprob_backward(dlogp, a, mean, std)
    dstd = dstd + gaussian_entropy_backward(xp.full(n, -ent_coef / n, dtype=x.dtype), std)
    return loss, actor_backward(p, cache, dmean, dstd)


# ---------------------------------------------------------------------------------------
# Critic: V(x)
# ---------------------------------------------------------------------------------------

def critic_forward(p, x):
    """V(x), shape (N,)."""
    h = hidden_forward(p, x)                                # (N, H)
    return affine_forward(h, p["W2"], p["b2"])[:, 0]


def critic_loss_and_grad(p, x, y):
    """L = mean((y − V(x))²) with y (N,) a constant target (semi-gradient TD).

        dL/dVₙ = −2 (yₙ − V(xₙ)) / N
    """
    h = hidden_forward(p, x)                                # (N, H)
    check_array("y", y, 1, (x.shape[0],))
    y = y.astype(x.dtype, copy=False)
    v = affine_forward(h, p["W2"], p["b2"])[:, 0]          # (N,)
    err = y - v
    loss = (err * err).mean()
    dv = (-2.0 / x.shape[0]) * err                          # (N,)
    return loss, critic_backward(p, (x, h), dv)


def critic_value_and_input_grad(p, x):
    """V(x) (N,), as critic_forward, and ∇ₓV(x) (N,d) from the same hidden layer:
    V = tanh(x W1 + b1) W2 + b2, so ∇ₓV = ((1 − h²) ⊙ W2ᵀ) W1ᵀ."""
    h = hidden_forward(p, x)                                # (N, H)
    v = affine_forward(h, p["W2"], p["b2"])[:, 0]           # (N,)
    return v, ((1.0 - h * h) * p["W2"][:, 0]) @ p["W1"].T  # (N,), (N, d)


def critic_backward(p, cache, dv):
    """Backpropagate dL/dV (N,) to every critic parameter; cache = (x, h), the input and
    the hidden activations of critic_forward."""
    x, h = cache
    dh, dW2, db2 = affine_backward(dv[:, None], h, p["W2"])
    dW1, db1 = hidden_backward(p, x, h, dh)
    return {"W1": dW1, "b1": db1, "W2": dW2, "b2": db2}


# ---------------------------------------------------------------------------------------
# Score network: s(x) ≈ ∇ₓ log p(x), trained by (implicit) score matching
# ---------------------------------------------------------------------------------------

def score_forward(p, x):
    """s(x), shape (N,d)."""
    h = hidden_forward(p, x)                                # (N, H)
    return affine_forward(h, p["W2"], p["b2"])


def score_loss_and_grad(p, x, probes=None):
    """Hyvärinen's score-matching loss L = mean(tr ∇ₓs(x) + ½|s(x)|²) and its gradient.

    Derivation, with z = x W1 + b1, a = tanh z, g = 1 − a², s = a W2 + b2:
      Jacobian   ∂sₖ/∂xᵢ = Σⱼ W1[i,j] gⱼ W2[j,k]
    The trace term is exact (probes None: exact_trace_forward, below) or Hutchinson's
    estimate with probes u (hutchinson_trace_forward, below). Both are
    T = (1/N) Σₙⱼ gₙⱼ cₙⱼ, so one backward pass serves both. Second-order terms:
      through g:  ∂gⱼ/∂zⱼ = −2 aⱼ gⱼ            ⇒  dz += −2 a g c / N
      through c:  exact_trace_backward or hutchinson_trace_backward, below
    The ½|s|² term backpropagates as usual with ds = s / N.
    Cost O(N·H·d): no loop over dimensions. `probes` (N,d): Gaussian or Rademacher.
    """
    a = hidden_forward(p, x)                                # (N, H)
    n = x.shape[0]
    g = 1.0 - a * a                                         # (N, H)
    s = affine_forward(a, p["W2"], p["b2"])                 # (N, d)
    if probes is None:
        trace, c, cache = exact_trace_forward(p, g)         # trace (N,), c (H,)
        trace_backward = exact_trace_backward
    else:
        check_array("probes", probes, 2, (n, x.shape[1]))
        trace, c, cache = hutchinson_trace_forward(p, g, probes)  # trace (N,), c (N, H)
        trace_backward = hutchinson_trace_backward
    loss = (trace + 0.5 * (s * s).sum(axis=1)).mean()
    grads = score_backward(p, (x, a), s / n, -2.0 * a * g * c / n)  # ½|s|², and the trace through g
    dW1, dW2 = trace_backward(p, cache)                     # the trace through c
    grads["W1"] = grads["W1"] + dW1
    grads["W2"] = grads["W2"] + dW2
    return loss, grads


def exact_trace_forward(p, g):
    """The exact trace of ∇ₓs per sample, from g = 1 − a² (N,H):
      exact      tr ∇ₓs  = Σⱼ gⱼ cⱼ,          cⱼ = Σᵢ W1[i,j] W2[j,i]        (c (H,), shared)
    Returns the trace (N,), c (H,) and exact_trace_backward's cache (g)."""
    c = (p["W1"] * p["W2"].T).sum(axis=0)                   # (H,)
    return g @ c, c, g                                      # (N,), (H,), (N, H)


def exact_trace_backward(p, g):
    """The exact trace's path through c, as the extra dW1 (d,H), dW2 (H,d):
      through c (exact):       ∂cⱼ/∂W1[i,j] = W2[j,i], ∂cⱼ/∂W2[j,i] = W1[i,j]
                               ⇒ dW1 += ḡ ⊙ W2ᵀ,  dW2 += ḡ ⊙ W1ᵀ,  ḡⱼ = (1/N) Σₙ gₙⱼ"""
    gbar = sum_rows(g) / g.shape[0]                         # (H,) the mean over the batch
    return gbar * p["W2"].T, gbar[:, None] * p["W1"].T      # (d, H), (H, d)


def hutchinson_trace_forward(p, g, u):
    """Hutchinson's estimate of the trace per sample, from g = 1 − a² (N,H) and probes u (N,d):
      Hutchinson uᵀ∇ₓs u = Σⱼ gⱼ cₙⱼ,  cₙⱼ = (u W1)ₙⱼ (u W2ᵀ)ₙⱼ   (probe u (N,d), c (N,H))
    Returns the estimate (N,), c (N,H) and hutchinson_trace_backward's cache."""
    u1 = matmul(u, p["W1"])                                 # (N, H)
    u2 = matmul(u, p["W2"].T)                               # (N, H)
    c = u1 * u2                                             # (N, H)
    return (g * c).sum(axis=1), c, (g, u, u1, u2)           # (N,), (N, H), cache


def hutchinson_trace_backward(p, cache):
    """Hutchinson's path through c, as the extra dW1 (d,H), dW2 (H,d), from the cache (the
    probes and their products with the weights; p is not needed):
      through c (Hutchinson):  dW1 += uᵀ (g ⊙ (u W2ᵀ)) / N,  dW2 += (g ⊙ (u W1))ᵀ u / N"""
    g, u, u1, u2 = cache
    n = g.shape[0]
    return u.T @ (g * u2) / n, (g * u1).T @ u / n           # (d, H), (H, d)


def score_backward(p, cache, ds, dz=None):
    """Backpropagate dL/ds (N, d) to every score parameter, with dz (N, H), when given, added
    to the gradient at the hidden pre-activation (the trace term's path through g); cache =
    (x, a), the input and the hidden activations of score_forward."""
    x, a = cache
    da, dW2, db2 = affine_backward(ds, a, p["W2"])
    dW1, db1 = hidden_backward(p, x, a, da, dz)
    return {"W1": dW1, "b1": db1, "W2": dW2, "b2": db2}
