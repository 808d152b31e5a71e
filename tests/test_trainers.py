"""The trainers: config validation, GAE, policy evaluation against the closed form, score
read-out, which networks each step changes, bit-for-bit resume, non-finite detection."""
import json
import math
import os
from dataclasses import replace

import numpy as np
import pytest

import autograd_lite as al
import fastpaths
import mfcg
import nets
import rundir
from mfcg import LQProblem, preset

SOL = LQProblem().solution()


def tiny(algo, dim=1, **kw):
    """A configuration small enough for a step to take milliseconds."""
    settings = dict(batch=16, minibatch=8, n_samples=32, langevin_steps=3, eval_langevin_steps=5,
                    eval_samples=64, hidden_actor=8, hidden_critic=8, hidden_score=8, rollout=4,
                    steps=40, eval_every=10, checkpoint_every=10, problem=LQProblem(dim=dim))
    if algo == "ac":
        settings["batch"] = 1
    settings.update(kw)
    return preset("quick", algo, **settings)


def _arrays(state):
    """A copy of every array of a state, flattened to name → NumPy array. (There is no
    random-generator state: each step's stream is keyed by the seed and the step.) Adam's
    moments are flat in the layout of the network's FlatParams, as a checkpoint holds
    them, whether the state keeps them so or per array (Config.readable)."""
    out = {}
    copy = lambda v: np.array(al.to_numpy(v), copy=True)  # noqa: E731
    for net, params in state["params"].items():
        out.update({f"{net}.{k}": copy(v) for k, v in params.items()})
        for mom in ("m", "v"):
            out[f"adam.{net}.{mom}"] = copy(rundir.flat_moment(state["adam"][net][mom], params))
        out[f"adam.{net}.t"] = np.array(state["adam"][net]["t"])
    if state["target"] is not None:
        out.update({f"target.{k}": copy(v) for k, v in state["target"].items()})
    for key in rundir.STATE_ARRAYS:
        out[key] = copy(state[key])
    out.update({f"field_{k}": copy(v) for k, v in state["field"]._asdict().items()})
    for i, entry in enumerate(state["buffer"]):
        out.update({f"buffer.{i}.{k}": copy(v) for k, v in entry.items()})
    return out


# --- configuration ------------------------------------------------------------------------

def test_paper_preset_is_benchmark_notes_section_1():
    b = preset("paper", "b")
    assert (b.batch, b.n_samples, b.langevin_steps, b.eps_langevin, b.steps) == (8192, 1000, 200, 0.05, 200_000)
    assert (b.lr_actor, b.lr_critic, b.lr_global, b.lr_local) == (5e-6, 1e-5, 1e-6, 5e-4)
    assert (b.target_every, b.grad_clip, b.problem.sigma, b.problem.dt) == (200, 1.0, 0.5, 0.01)
    m = preset("paper", "m")
    assert (m.steps, m.minibatch, m.langevin_every, m.hutchinson) == (20_000, 1024, 50, True)
    d = preset("paper", "drl")
    assert (d.rollout, d.ppo_clip, d.gae_lambda, d.ent_coef, d.batch) == (256, 0.2, 0.95, 0.01, 8192)
    a = preset("paper", "ac")
    assert (a.batch, a.target_every, a.grad_clip, a.steps) == (1, 0, 0.0, 200_000)


def test_lean_preset_is_the_paper_with_fewer_langevin_iterations():
    for algo in mfcg.ALGOS:
        paper, lean = preset("paper", algo).to_dict(), preset("lean", algo).to_dict()
        assert lean.pop("langevin_steps") == mfcg.LEAN_LANGEVIN_STEPS < paper.pop("langevin_steps") == 200
        assert lean == paper


@pytest.mark.parametrize("kwargs, match", [
    (dict(algo="sac"), "algo must be one of"),
    (dict(algo="m", batch=1000, minibatch=300), r"batch \(1000\) must be divisible by minibatch \(300\)"),
    (dict(batch=0), "batch must be a positive integer"),
    (dict(steps=2.5), "steps must be an integer, got 2.5"),
    (dict(lr_actor=0.0), "lr_actor must be > 0"),
    (dict(eps_langevin=-1.0), "eps_langevin must be > 0"),
    (dict(ppo_clip=1.5), "ppo_clip must be in"),
    (dict(dtype="float16"), "dtype must be"),
    (dict(algo="drl", target_every=200), "target_every must be 0 for drl: .* no reader"),
    (dict(ppo_minibatches=0), "ppo_minibatches must be a positive integer"),
    (dict(algo="drl", target_every=0, rollout=2, batch=3, ppo_minibatches=7),
     r"ppo_minibatches \(7\) must be at most the rollout's rollout × batch = 6"),
    (dict(score_warmup=-1), "score_warmup must be >= 0"),
    (dict(score_warmup_lr=0.0), "score_warmup_lr must be > 0"),
    (dict(adv_norm="yes"), "adv_norm must be true or false"),
    (dict(antithetic=True, batch=15), r"antithetic needs an even batch .* batch=15"),
    (dict(algo="m", antithetic=True, batch=12, minibatch=3), r"antithetic needs an even batch .* minibatch=3"),
    (dict(restart_beyond=-1.0), "restart_beyond must be >= 0"),
    (dict(eval_chains=-5), r"eval_chains must be 0 \(the pools' n_samples\) or a positive integer"),
])
def test_invalid_configs_name_the_field(kwargs, match):
    with pytest.raises(ValueError, match=match):
        mfcg.Config(**kwargs)


def test_unknown_preset_or_algo():
    with pytest.raises(ValueError, match="preset must be one of"):
        preset("huge", "b")
    with pytest.raises(ValueError, match="algo must be one of"):
        preset("quick", "ppo")


def test_config_round_trips_through_its_dict():
    cfg = tiny("m", dim=2, seed=5)
    assert mfcg.Config(**cfg.to_dict()) == cfg


def test_the_robust_switches_are_off_in_the_paper_presets():
    """The paper, lean and quick presets keep Algorithm 4's one PPO step per rollout and no
    warm start; the robust preset is quick plus exactly the changes it lists."""
    for algo in mfcg.ALGOS:
        for name in ("paper", "lean", "quick"):
            c = preset(name, algo)
            assert (c.score_warmup, c.ppo_epochs, c.ppo_minibatches, c.adv_norm) == (0, 1, 1, False)
            assert not c.antithetic
        quick, robust = preset("quick", algo).to_dict(), preset("robust", algo).to_dict()
        changed = {k for k in robust if robust[k] != quick[k]}
        ppo = {"ppo_epochs", "ppo_minibatches", "adv_norm", "steps"} if algo == "drl" else set()
        assert changed == {"score_warmup"} | ppo, changed


def test_the_steady_preset_is_the_robust_one_with_quieter_sampling():
    """steady = robust + antithetic agents (not AC: one agent has no partner) + the Langevin
    step STEADY_EPS_LANGEVIN (M, which refreshes its pools every 50 steps, with as many more
    iterations per refresh as the step is smaller), and DRL 12,000 steps; nothing else differs."""
    assert mfcg.STEADY_EPS_LANGEVIN < preset("paper", "b").eps_langevin == 0.05
    for algo in mfcg.ALGOS:
        robust, steady = preset("robust", algo).to_dict(), preset("steady", algo).to_dict()
        changed = {k: steady[k] for k in steady if steady[k] != robust[k]}
        expected = {"eps_langevin": mfcg.STEADY_EPS_LANGEVIN}
        if algo != "ac":
            expected["antithetic"] = True
        if algo == "drl":
            expected["steps"] = 12_000
        if algo == "m":   # the same Langevin time per refresh as the robust preset's
            expected["langevin_steps"] = mfcg.STEADY_M_LANGEVIN_STEPS
            assert (steady["langevin_steps"] * steady["eps_langevin"]
                    == robust["langevin_steps"] * robust["eps_langevin"])
        assert changed == expected, (algo, changed)
    with pytest.raises(ValueError, match="antithetic needs an even batch"):
        preset("steady", "ac", antithetic=True)   # why AC is left out: one agent has no partner


def test_the_single_preset_is_steady_ac_with_a_floor_a_long_memory_a_decay_restarts_and_a_quieter_target():
    """single = the steady preset's AC + a policy-std floor of 0.5, the local score's rate
    ×0.002, rates held at ×1 then down to ×0.05, restarts beyond ±3, the TD target's
    control variate, 200,000 steps (and its bookkeeping); for AC only."""
    steady, single = preset("steady", "ac").to_dict(), preset("single", "ac").to_dict()
    changed = {k: single[k] for k in single if single[k] != steady[k]}
    assert changed == {"steps": 200_000, "std_floor": mfcg.SINGLE_STD_FLOOR, "lr_local": 1e-5, "lr_peak": 1.0,
                       "lr_final": 0.05, "restart_beyond": 3.0, "td_control_variate": True, "eval_every": 5000,
                       "checkpoint_every": 10_000}
    assert single["lr_local"] == steady["lr_local"] / 500
    for algo in ("b", "m", "drl"):
        with pytest.raises(ValueError, match=f"the single preset is for ac only, not {algo}"):
            preset("single", algo)


def test_the_dims_preset_is_steady_with_the_pathwise_gradient_the_reward_per_coordinate_and_a_slow_actor():
    """dims = the steady preset + the reward per coordinate and 20,000 steps; for B and M also
    the pathwise actor gradient and the actor's rate ×0.1; nothing else; not for AC."""
    for algo in ("b", "m", "drl"):
        steady, dims = preset("steady", algo).to_dict(), preset("dims", algo).to_dict()
        changed = {k: dims[k] for k in dims if dims[k] != steady[k]}
        expected = {"per_coordinate": True, "steps": mfcg.DIMS_STEPS}
        if algo != "drl":
            expected.update(actor_gradient="pathwise",
                            lr_actor=pytest.approx(steady["lr_actor"] * mfcg.DIMS_ACTOR_RATE))
        assert changed == expected, algo
    with pytest.raises(ValueError, match="the dims preset is for b, m, drl only, not ac"):
        preset("dims", "ac")


def test_antithetic_normals_come_in_pairs():
    normals = mfcg.AntitheticNormals(fastpaths.make_rng(3, np))
    z = normals.standard_normal((6, 2), dtype=np.float32)
    assert z.shape == (6, 2) and z.dtype == np.float32
    assert np.array_equal(z[3:], -z[:3]) and np.all(z != 0)
    with pytest.raises(ValueError, match="an even number of rows, got 5"):
        normals.standard_normal((5, 2))


@pytest.mark.parametrize("antithetic", [False, True])
def test_antithetic_agents_move_the_population_mean_without_noise(antithetic):
    """With cfg.antithetic the agents start at mean exactly 0, their action noise comes in
    pairs, and the population's mean moves by Δt times the mean action: the Brownian noise
    cancels in it. With independent noise it does not (the test's other half)."""
    cfg = tiny("b", batch=16, antithetic=antithetic, std_floor=0.5)
    state = mfcg.init_state(cfg)
    x = state["x"].astype(np.float64)
    a, _, x_next = mfcg.act_and_step(state, cfg, state["x"], state["field"], mfcg.training_rng(cfg, 0))
    mean_action, std, _ = nets.actor_forward(state["params"]["actor"], state["x"], cfg.std_floor)
    z = (a - mean_action) / std                                       # the action normals
    brownian = x_next - x - a * cfg.problem.dt                        # σ √Δt × the step normals
    paired = lambda v: np.allclose(v[8:], -v[:8], atol=1e-6)          # noqa: E731
    assert paired(x) == paired(z) == paired(brownian) == antithetic
    assert (abs(x.mean()) < 1e-7) == (abs(brownian.mean()) < 1e-7) == antithetic


@pytest.mark.parametrize("antithetic", [False, True])
def test_m_keeps_antithetic_pairs_whole_in_its_minibatches(antithetic):
    """M visits its agents in random minibatches. With cfg.antithetic each minibatch holds
    whole pairs, partners at its rows i and i + b/2 (agent_order), and every agent goes back
    to its own row: after a step whose action does not depend on the state, the partners
    i and i + B/2 are still mirror images. Split pairs (one permutation of the agents, as
    without the switch) would leave them unrelated."""
    cfg = tiny("m", batch=32, minibatch=8, antithetic=antithetic, steps=1, std_floor=0.5)
    state = mfcg.init_state(cfg)
    for name in ("Wm", "bm", "Ws"):   # mean 0 and std softplus(bs) + floor, the same for all x
        state["params"]["actor"][name][...] = 0
    x = mfcg.train(cfg, state)["x"]
    # The actor's Adam step after each minibatch moves later minibatches' means by about the
    # rate, 5e-5 (times Δt): partners then differ by 1e-5, unrelated agents by about 1.
    assert np.allclose(x[16:], -x[:16], atol=1e-4) == antithetic
    order = mfcg.agent_order(cfg, mfcg.training_rng(cfg, 0))
    assert sorted(order.tolist()) == list(range(32))
    if not antithetic:   # M as before the switch: one permutation of the agents, same stream
        assert np.array_equal(order, mfcg.training_rng(cfg, 0).permutation(32))
    else:
        blocks = order.reshape(4, 8)                  # the four minibatches' rows
        assert np.array_equal(blocks[:, 4:], blocks[:, :4] + 16)


# --- GAE -------------------------------------------------------------------------------------

def test_gae_by_hand():
    r = np.array([[1.0], [1.0]])
    zero = np.zeros((2, 1))
    adv, ret = mfcg.gae(r, zero, zero, 1.0, 1.0)
    np.testing.assert_allclose(adv[:, 0], [2.0, 1.0])
    # γ = 0.9, λ = 0.5, values: δ₁ = 1 + 0.9·0.3 − 0.5 = 0.77; δ₀ = 1 + 0.9·0.5 − 0.2 = 1.25
    # Â₁ = 0.77, Â₀ = 1.25 + 0.45·0.77 = 1.5965; R̂ = Â + V
    adv, ret = mfcg.gae(r, np.array([[0.2], [0.5]]), np.array([[0.5], [0.3]]), 0.9, 0.5)
    np.testing.assert_allclose(adv[:, 0], [1.5965, 0.77])
    np.testing.assert_allclose(ret[:, 0], [1.7965, 1.27])


def test_gae_runs_per_agent_along_time():
    """Vectorised over agents, it equals a loop over each agent alone: no agent's
    advantage leaks into another's (the authors' flattened-buffer bug)."""
    rng = np.random.default_rng(0)
    M, B = 7, 5
    r, v, vn = rng.normal(size=(M, B)), rng.normal(size=(M, B)), rng.normal(size=(M, B))
    adv, _ = mfcg.gae(r, v, vn, 0.99, 0.95)
    for i in range(B):
        one, _ = mfcg.gae(r[:, i:i + 1], v[:, i:i + 1], vn[:, i:i + 1], 0.99, 0.95)
        np.testing.assert_allclose(adv[:, i], one[:, 0], rtol=1e-13)
    r2 = r.copy()
    r2[:, 0] += 100.0  # change agent 0 only
    adv2, _ = mfcg.gae(r2, v, vn, 0.99, 0.95)
    np.testing.assert_array_equal(adv2[:, 1:], adv[:, 1:])


# --- the critic learns the closed-form value, not the appendix formula -----------------------

def test_policy_evaluation_reaches_the_closed_form_value():
    """Actor fixed to α̂ (a near-linear tanh unit) with small noise, means fixed at m*:
    TD learning of the critic through actor_critic_update approaches −value(x), and not the
    appendix formula. The critic's predictions are averaged over the last third of training
    (Polyak–Ruppert) to remove Adam's wander on noisy TD targets.

    Measured (this setting, seeds 1, 5, 6; widths 32 and 128): RMSE 0.010–0.012 to the
    cost-to-go, 0.044–0.047 to the appendix formula. The residual is a slightly too small
    curvature that shrinks with width (−0.061 at 8 units, −0.026 at 32, −0.019 at 128):
    TD(0)'s approximation error at γ = 0.99, not a sign or discount error (those give
    errors of order the value itself)."""
    cfg = tiny("b", batch=1024, hidden_critic=32, target_every=0, grad_clip=0.0, std_floor=nets.STD_FLOOR)
    state = mfcg.init_state(cfg)
    g2, w, noise_std = SOL.gamma2, 1e-3, 0.05   # tanh(w x)/w = x to 1e-6 relative, |x| < 3
    f32 = lambda v: al.get_xp().asarray(np.asarray(v, dtype=np.float32))  # noqa: E731  on the backend
    state["params"]["actor"] = fastpaths.FlatParams({
        "W1": f32([[w]]), "b1": f32([0.0]), "Wm": f32([[-2 * g2 / w]]),
        "bm": f32([2 * g2 * SOL.mean]), "Ws": f32([[0.0]]),
        "bs": f32([math.log(math.expm1(noise_std - cfg.std_floor))])})
    state["adam"]["actor"] = al.adam_init(state["params"]["actor"])
    actor_before = {k: al.to_numpy(v).copy() for k, v in state["params"]["actor"].items()}
    field = mfcg.MeanField(f32([SOL.mean]), f32([SOL.mean]), f32([0.0]))  # the means frozen at m*
    state["x"] = f32(SOL.mean + SOL.std * np.random.default_rng(1).standard_normal((cfg.batch, 1)))
    x = SOL.mean + SOL.std * np.random.default_rng(2).standard_normal((4000, 1))
    avg, count = np.zeros(len(x)), 0
    for n in range(6000):
        lrs = {"actor": 0.0, "critic": 1e-3 if n < 4000 else 1e-4}
        a, r, x_next = mfcg.act_and_step(state, cfg, state["x"], field, mfcg.training_rng(cfg, n))
        mfcg.actor_critic_update(state, cfg, state["x"], a, r, x_next, lrs)
        state["x"] = x_next
        if n >= 4000 and n % 20 == 0:
            avg += -al.to_numpy(nets.critic_forward(state["params"]["critic"], f32(x)))
            count += 1
    for k in actor_before:  # lr 0: the actor really stayed at α̂
        np.testing.assert_array_equal(al.to_numpy(state["params"]["actor"][k]), actor_before[k])
    neg_v = avg / count
    rmse = lambda target: float(np.sqrt(np.mean((neg_v - target) ** 2)))  # noqa: E731
    # the noisy policy pays ½ noise² per unit time on top of α̂: + ½ noise² / β in value
    err, err_paper = rmse(SOL.value(x) + 0.5 * noise_std ** 2), rmse(SOL.value_paper(x))
    assert err < 0.02, err
    assert err_paper > 3 * err, (err, err_paper)


@pytest.mark.parametrize("hutchinson", [False, True])
def test_score_network_learns_a_gaussian(hutchinson):
    """Trained on samples of N(m*, s²) the score network's read-out has mean m* and std s."""
    cfg = tiny("b", hidden_score=32, hutchinson=hutchinson)
    state = mfcg.init_state(cfg)
    rng, probes = np.random.default_rng(3), fastpaths.make_rng(4)  # data on the host, probes on the backend
    lrs = {"score_global": 3e-3, "score_local": 3e-3}
    for _ in range(1500):
        x = al.get_xp().asarray((SOL.mean + SOL.std * rng.standard_normal((512, 1))).astype(np.float32))
        mfcg.score_update(state, cfg, x, lrs, probes)
    for net in ("score_global", "score_local"):
        p = state["params"][net]
        read = mfcg.density_from_score(lambda g: nets.score_forward(p, g.astype(np.float32)), -3.0, 3.5)
        assert read["mean"] == pytest.approx(SOL.mean, abs=0.02)
        assert read["std"] == pytest.approx(SOL.std, rel=0.05)


# --- which networks one step changes --------------------------------------------------------

def _changed(before, after):
    return {k for k in before.keys() & after.keys() if not np.array_equal(before[k], after[k])}


def _nets_changed(before, after):
    return {k.split(".")[0] for k in _changed(before, after) if "." in k and not k.startswith("adam")}


@pytest.mark.parametrize("algo", ["ac", "b", "m", "drl"])
def test_one_step_changes_exactly_the_right_networks(algo):
    cfg = tiny(algo, langevin_every=2 if algo == "m" else 1, target_every=(0 if algo in ("ac", "drl") else 3))
    state = mfcg.init_state(cfg)
    s0 = _arrays(state)
    mfcg.train(cfg, state, until=1)
    s1 = _arrays(state)
    changed = _nets_changed(s0, s1)
    if algo == "drl":  # not a rollout boundary: only the score nets learn, the buffer grows
        assert changed == {"score_global", "score_local"}
        assert len(state["buffer"]) == 1
    elif algo == "ac":
        assert changed == {"actor", "critic", "score_global", "score_local"}
    else:  # L18/L21: T ← V at n = 0, so the target changes too
        assert changed == {"actor", "critic", "score_global", "score_local", "target"}
    if algo in ("b", "m"):
        for k in state["target"]:
            np.testing.assert_array_equal(al.to_numpy(state["target"][k]), al.to_numpy(state["params"]["critic"][k]))
    else:
        assert state["target"] is None
    assert {"pool_global", "pool_local", "x"} <= _changed(s0, s1)
    mfcg.train(cfg, state, until=2)  # n = 1
    s2 = _arrays(state)
    if algo == "m":  # n = 1 is not a multiple of langevin_every = 2: pools untouched
        assert "pool_global" not in _changed(s1, s2) and "pool_local" not in _changed(s1, s2)
    if algo in ("b", "m"):  # n = 1: no copy, so the target now lags the critic
        assert "target" not in _nets_changed(s1, s2)
        assert any(not np.array_equal(al.to_numpy(state["target"][k]), al.to_numpy(state["params"]["critic"][k]))
                   for k in state["target"])
    if algo == "drl":
        mfcg.train(cfg, state, until=cfg.rollout)  # the rollout boundary: PPO and critic step
        s3 = _arrays(state)
        assert {"actor", "critic"} <= _nets_changed(s2, s3)
        assert state["buffer"] == []


# --- the robust preset's switches -----------------------------------------------------------

def test_warm_start_fits_both_score_networks_to_the_initial_law():
    """After the warm start the law each score network describes (its density read-out,
    no sampler) is N(0, 1) to within 0.05 in mean and 5 % in std, the law both pools start
    from; freshly initialised it is far from it (the negative control: seed 0's networks
    describe laws centred at −4.3 and −2.5). Nothing else in the initial state changes, and
    training starts with fresh Adam moments."""
    cfg = tiny("b", hidden_score=32, n_samples=256, score_warmup=300)
    cold, warm = mfcg.init_state(replace(cfg, score_warmup=0)), mfcg.init_state(cfg)
    for name in ("score_global", "score_local"):
        law = [mfcg.density_from_score(lambda x, p=s["params"][name]: nets.score_forward(p, x.astype(np.float32)),
                                       -8.0, 8.0) for s in (cold, warm)]
        assert abs(law[1]["mean"]) < 0.05 and abs(law[1]["std"] - 1.0) < 0.05, (name, law[1])
        assert abs(law[0]["mean"]) > 1.0 or abs(law[0]["std"] - 1.0) > 0.5, (name, law[0])
        assert warm["adam"][name]["t"] == 0 and not np.any(al.to_numpy(warm["adam"][name]["m"]))
    a, b = _arrays(cold), _arrays(warm)
    assert {k.split(".")[0] for k in _changed(a, b)} == {"score_global", "score_local"}


def _spy_on_ppo(monkeypatch):
    """Record the rows, advantages and clip range of every call of nets.ppo_loss_and_grad."""
    calls, real = [], nets.ppo_loss_and_grad

    def spy(p, x, a, adv, logp_old, clip, *rest):
        calls.append((np.array(x, copy=True), np.array(adv, copy=True), clip))
        return real(p, x, a, adv, logp_old, clip, *rest)
    monkeypatch.setattr(nets, "ppo_loss_and_grad", spy)
    return calls


def test_ppo_takes_an_actor_and_a_critic_step_per_minibatch_and_each_pass_sees_every_row(monkeypatch):
    """3 passes of 4 minibatches over a rollout of 4 steps × 6 agents: 12 actor and 12
    critic steps; each pass is a reshuffle of the 24 transitions into 4 × 6. Algorithm 4
    as written (1 pass, 1 minibatch): one step of each on all 24 rows in stored order."""
    calls = _spy_on_ppo(monkeypatch)
    cfg = tiny("drl", rollout=4, batch=6, steps=4, ppo_epochs=3, ppo_minibatches=4)
    state = mfcg.train(cfg)
    assert (state["adam"]["actor"]["t"], state["adam"]["critic"]["t"]) == (12, 12)
    rows = [np.concatenate([x for x, _, _ in calls[i:i + 4]])[:, 0] for i in range(0, 12, 4)]
    assert all(len(x) == 6 for x, _, _ in calls) and len(set(rows[0])) == 24
    assert all(sorted(r) == sorted(rows[0]) for r in rows) and not np.array_equal(rows[0], rows[1])
    calls.clear()
    state = mfcg.train(replace(cfg, ppo_epochs=1, ppo_minibatches=1))
    assert (state["adam"]["actor"]["t"], state["adam"]["critic"]["t"]) == (1, 1)
    stored = np.concatenate([x for x, _, _ in calls])[:, 0]   # one time step per chunk on NumPy
    np.testing.assert_array_equal(np.sort(stored), np.sort(rows[0]))


def test_advantage_normalisation_is_per_minibatch(monkeypatch):
    """With adv_norm every minibatch's advantages have mean 0 and std 1; without it they
    keep the scale of the rewards (Δt-sized: far from std 1). A minibatch of 16 of the
    32 transitions reaches the loss in two chunks of one time step (8 agents) on NumPy."""
    calls = _spy_on_ppo(monkeypatch)
    cfg = tiny("drl", rollout=4, batch=8, steps=4, ppo_minibatches=2, adv_norm=True, dtype="float64")
    minibatches = lambda: [np.concatenate([calls[i][1], calls[i + 1][1]]) for i in range(0, len(calls), 2)]  # noqa: E731
    mfcg.train(cfg)
    assert len(calls) == 4
    for adv in minibatches():
        assert abs(adv.mean()) < 1e-12 and adv.std() == pytest.approx(1.0, rel=1e-6)
    calls.clear()
    mfcg.train(replace(cfg, adv_norm=False))
    assert all(abs(adv.std() - 1.0) > 0.5 for adv in minibatches())


def test_ppo_clip_zero_switches_clipping_off(monkeypatch):
    """ppo_clip = 0 hands the surrogate an infinite clip range, so no ratio is ever
    clipped (the importance-weighted policy gradient); the paper's 0.2 is handed on as is."""
    calls = _spy_on_ppo(monkeypatch)
    for clip, handed in ((0.0, math.inf), (0.2, 0.2)):
        calls.clear()
        mfcg.train(tiny("drl", rollout=4, steps=4, ppo_clip=clip))
        assert calls and all(c == handed for _, _, c in calls)
    mean, std, _ = nets.actor_forward(nets.init_actor(1, 1, np.random.default_rng(0), 8, xp=np), np.zeros((4, 1)))
    a, adv = mean + 3.0 * std, np.ones(4)   # log π(a) ≈ −5.4 − log σ against log π_old = −9: ρ ≫ 1.2
    p = nets.init_actor(1, 1, np.random.default_rng(0), 8, xp=np)
    _, g_clipped = nets.ppo_loss_and_grad(p, np.zeros((4, 1)), a, adv, np.full(4, -9.0), 0.2, 0.0)
    _, g_free = nets.ppo_loss_and_grad(p, np.zeros((4, 1)), a, adv, np.full(4, -9.0), math.inf, 0.0)
    assert not np.any(g_clipped["Wm"]) and np.any(g_free["Wm"])


def test_the_nash_control_error_is_measured_over_the_nash_law(monkeypatch):
    """An actor whose mean is exactly the non-cooperative control scores 0 over that
    equilibrium's own law, with slope −2Γ2; the MFCG control is off by the constant
    2Γ2|m_mfg − m*| = 0.562 there. Over N(m_mfg, std²): the shifted draws' mean is near m_mfg."""
    cfg = tiny("b", eval_samples=4096)
    state = mfcg.init_state(cfg)
    seen = []
    for control, expected in ((SOL.control_mfg, 0.0), (SOL.control, 2 * SOL.gamma2 * (SOL.mean_mfg - SOL.mean))):
        def exact(p, x, std_floor=None, control=control):
            seen.append(np.asarray(x, dtype=np.float64))
            return control(np.asarray(x, dtype=np.float64)), None, None
        monkeypatch.setattr(nets, "actor_forward", exact)
        rec = mfcg.evaluate(state, cfg)
        assert rec["control_rmse_at_mfg"] == pytest.approx(expected, abs=1e-5)
        assert rec["control_slope_at_mfg"] == pytest.approx(-2 * SOL.gamma2, rel=1e-5)
    assert abs(seen[1].mean() - SOL.mean_mfg) < 0.03 and abs(seen[1].std() - SOL.std) < 0.02


def test_history_records_the_training_pools_the_agents_pay_for():
    """Each evaluation records the persistent pools' means (the m and m̃ of the last
    refresh, which the agents paid for) and stds."""
    cfg = tiny("b", steps=10, eval_every=10)
    state = mfcg.train(cfg)
    rec = state["history"][-1]
    field = state["field"]
    for tag, paid in (("global", field.m), ("local", field.m_tilde)):
        pool = al.to_numpy(state[f"pool_{tag}"]).astype(np.float64)
        assert rec[f"pool_{tag}_mean"] == pytest.approx(float(al.to_numpy(paid)[0]), rel=1e-5)
        assert rec[f"pool_{tag}_std"] == pytest.approx(pool.std(), rel=1e-12)


def test_restart_outside_replaces_exactly_the_agents_out_of_the_box():
    """An agent with any coordinate beyond ±restart_beyond gets the stream's fresh N(0, I)
    row, every other agent keeps its state; the stream is drawn either way; off, nothing
    changes."""
    cfg = tiny("b", dim=2, restart_beyond=3.0)
    x = np.array([[0.0, 0.0], [3.5, 0.0], [0.0, -3.01], [2.99, -2.99], [-10.0, 10.0]], dtype=np.float32)
    fresh = np.random.default_rng(7).standard_normal(x.shape, dtype=np.float32)
    out = mfcg.restart_outside(cfg, x, np.random.default_rng(7))
    moved = np.array([False, True, True, False, True])
    np.testing.assert_array_equal(out[moved], fresh[moved])
    np.testing.assert_array_equal(out[~moved], x[~moved])
    assert mfcg.restart_outside(replace(cfg, restart_beyond=0.0), x, np.random.default_rng(7)) is x


def test_antithetic_agents_restart_in_pairs_from_a_fresh_pair():
    """With antithetic agents a pair (rows i, i + N/2) restarts together when either is out,
    from the antithetic stream's fresh pair z, −z, so the restarted agents' mean is exactly 0;
    the pairs in the box keep their states."""
    cfg = tiny("b", dim=2, restart_beyond=3.0, antithetic=True)
    x = np.array([[0.0, 0.0], [3.5, 0.0], [0.5, 0.5], [1.0, -1.0],
                  [0.1, 0.2], [0.3, 0.4], [-3.2, 0.0], [2.0, 2.0]], dtype=np.float32)
    fresh = mfcg.AntitheticNormals(np.random.default_rng(7)).standard_normal(x.shape, dtype=np.float32)
    out = mfcg.restart_outside(cfg, x, np.random.default_rng(7))
    moved = np.array([False, True, True, False] * 2)   # agent 1 is out, and agent 6: pairs (1, 5), (2, 6)
    np.testing.assert_array_equal(out[moved], fresh[moved])
    np.testing.assert_array_equal(out[~moved], x[~moved])
    np.testing.assert_array_equal(out[1] + out[5], 0.0)
    np.testing.assert_array_equal(out[2] + out[6], 0.0)


def test_a_restarted_agent_trains_on_its_true_step(monkeypatch):
    """The TD update sees x' as the dynamics made it; only the next step starts from the
    restart (one AC step from a state just inside the box, pushed out by a large action)."""
    cfg = tiny("ac", restart_beyond=1.0, steps=1, eval_every=1000)
    state = mfcg.init_state(cfg)
    state["x"][...] = 0.99
    seen = {}
    real_update = mfcg.actor_critic_update
    def spy(state, cfg, x, a, r, x_next, lrs):
        seen["x_next"] = x_next.copy()
        return real_update(state, cfg, x, a, r, x_next, lrs)
    monkeypatch.setattr(mfcg, "actor_critic_update", spy)
    monkeypatch.setattr(mfcg.LQProblem, "step", lambda self, x, a, rng: x + 1.0)   # out for sure
    mfcg.train(cfg, state)
    assert seen["x_next"][0, 0] == pytest.approx(1.99)
    assert abs(state["x"][0, 0]) < 6 and state["x"][0, 0] != pytest.approx(1.99)


@pytest.mark.parametrize("antithetic", [False, True], ids=["single", "pairs"])
def test_m_restarts_the_agents_out_of_the_box_once_its_step_is_done(monkeypatch, antithetic):
    """M's walls: once every minibatch has stepped, exactly the agents with a coordinate
    beyond ±restart_beyond start again (with antithetic agents, both of a pair, from z, −z);
    the minibatches' updates saw the true steps. Nobody moves here (the step is the
    identity), so an agent out of the box is one placed there."""
    cfg = tiny("m", dim=2, restart_beyond=1.0, steps=1, eval_every=1000, antithetic=antithetic)
    state = mfcg.init_state(cfg)
    x0 = np.full((16, 2), 0.5)
    x0[[1, 6], 0], x0[11, 1] = 2.0, -3.0
    state["x"][...] = x0
    seen, real_update = [], mfcg.actor_critic_update
    def spy(state, cfg, x, a, r, x_next, lrs):
        seen.append(np.array(x_next))
        return real_update(state, cfg, x, a, r, x_next, lrs)
    monkeypatch.setattr(mfcg, "actor_critic_update", spy)
    monkeypatch.setattr(mfcg.LQProblem, "step", lambda self, x, a, rng: x.copy())
    mfcg.train(cfg, state)
    assert len(seen) == 2 and (np.abs(np.concatenate(seen)) > 1.0).any(axis=1).sum() == 3
    kept = (state["x"] == 0.5).all(axis=1)
    assert not np.isin(state["x"][~kept], [2.0, -3.0]).any()
    if not antithetic:   # the agents come back in the step's order: count them
        assert (~kept).sum() == 3
        return
    np.testing.assert_array_equal(np.flatnonzero(~kept), [1, 3, 6, 9, 11, 14])   # pairs: rows i, i + 8
    np.testing.assert_array_equal(state["x"][[1, 3, 6]] + state["x"][[9, 11, 14]], 0.0)


def test_drl_restarts_its_agents_only_between_rollouts(monkeypatch):
    """Inside a rollout every stored step starts where the last one ended (GAE sums along
    unbroken trajectories); between rollouts exactly the agents out of the box (±0.8, so
    many are) start again, from the stream's fresh draws."""
    cfg = tiny("drl", dim=2, restart_beyond=0.8, steps=8, rollout=4, eval_every=1000)
    rollouts, real_update = [], mfcg.ppo_update
    def spy(state, cfg, lrs, rng):
        rollouts.append([{k: np.array(v) for k, v in entry.items()} for entry in state["buffer"]])
        return real_update(state, cfg, lrs, rng)
    monkeypatch.setattr(mfcg, "ppo_update", spy)
    mfcg.train(cfg)
    assert len(rollouts) == 2
    for buf in rollouts:
        for before, after in zip(buf, buf[1:]):
            np.testing.assert_array_equal(after["x"], before["x_next"])
    end, start = rollouts[0][-1]["x_next"], rollouts[1][0]["x"]
    out = (np.abs(end) > 0.8).any(axis=1)
    assert 0 < out.sum() < len(out)
    np.testing.assert_array_equal(start[~out], end[~out])
    assert (start[out] != end[out]).all()


@pytest.mark.parametrize("problem", [LQProblem(), LQProblem(dim=3), mfcg.rotated_problem(3)], ids=["1d", "3d", "rotated"])
def test_the_noise_control_variate_keeps_the_td_targets_mean_and_takes_most_of_its_variance(problem):
    """Over many draws of one step from a fixed (x, a): γ·noise_control_variate has mean
    zero (within four standard errors), and T(x') less it varies less than a twentieth as
    much as T(x') (a critic whose curvature is small next to its slope, as a value's is
    over the agents' range)."""
    d, n = problem.dim, 200_000
    cfg = mfcg.Config(problem=problem, dtype="float64", td_control_variate=True)
    critic = nets.init_critic(d, np.random.default_rng(3), 16, np.float64)
    x = np.tile(np.linspace(-0.5, 0.5, d), (n, 1))
    a = np.tile(np.linspace(0.3, -0.2, d), (n, 1))
    x_next = problem.step(x, a, np.random.default_rng(4))
    cv = mfcg.noise_control_variate(cfg, critic, x, a, x_next)
    assert abs(cv.mean()) < 4 * cv.std() / math.sqrt(n)
    t_next = nets.critic_forward(critic, x_next)
    assert np.var(t_next - cv) < np.var(t_next) / 20


def test_the_td_target_and_the_advantage_subtract_the_control_variate_only_when_asked(monkeypatch):
    """With td_control_variate the critic regresses on r + γT(x') − γ∇T(x)·(x' − x − aΔt) and
    the actor's δ is that target less V(x); without, on r + γT(x'). T is the target critic,
    made to differ from the critic, and ∇T(x) is taken by central differences here."""
    seen = {}
    real_critic, real_actor = nets.critic_loss_and_grad, nets.actor_loss_and_grad
    def critic_spy(p, x, y):
        seen[on, "y"] = np.array(y, copy=True)
        return real_critic(p, x, y)
    def actor_spy(p, x, a, adv, std_floor):
        seen[on, "adv"] = np.array(adv, copy=True)
        return real_actor(p, x, a, adv, std_floor)
    monkeypatch.setattr(nets, "critic_loss_and_grad", critic_spy)
    monkeypatch.setattr(nets, "actor_loss_and_grad", actor_spy)
    for on in (False, True):
        cfg = tiny("b", td_control_variate=on, target_every=5, readable=True, dtype="float64")
        state = mfcg.init_state(cfg)
        for k in state["target"]:
            state["target"][k] += 0.1 * np.random.default_rng(5).standard_normal(state["target"][k].shape)
        field = mfcg.MeanField(*(np.zeros(1) for _ in range(3)))
        x = state["x"]
        a, r, x_next = mfcg.act_and_step(state, cfg, x, field, np.random.default_rng(1))
        target, v_x = nets.critic_forward(state["target"], x), nets.critic_forward(state["params"]["critic"], x)
        h = 1e-6
        slope = (nets.critic_forward(state["target"], x + h) - nets.critic_forward(state["target"], x - h)) / (2 * h)
        mfcg.actor_critic_update(state, cfg, x, a, r, x_next, mfcg.learning_rates(cfg, 0))
    gamma = cfg.problem.discount
    plain = r + gamma * nets.critic_forward(state["target"], x_next)
    np.testing.assert_allclose(seen[False, "y"], plain, rtol=1e-12)
    cv = slope * (x_next - x - cfg.problem.dt * a)[:, 0]
    np.testing.assert_allclose(seen[True, "y"], plain - gamma * cv, rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose(seen[True, "adv"], seen[True, "y"] - v_x, rtol=1e-12)
    assert not np.allclose(target, v_x)      # the target is not the critic


@pytest.mark.parametrize("readable", [False, True])
def test_drl_takes_the_control_variate_out_of_each_td_error_of_its_gae(monkeypatch, readable):
    """With td_control_variate DRL's GAE reads the rewards r_m − γ∇V(X_m)·(X_{m+1} − X_m −
    a_mΔt), V the critic and its slope taken by central differences here; values and next
    values are unchanged. Without it, the rollout's rewards. In two dimensions, over a
    rollout of three steps, with the fast paths and the readable definitions."""
    seen, real_gae = {}, mfcg.gae
    def gae_spy(rewards, values, next_values, gamma, lam):
        seen[on] = [np.array(v, copy=True) for v in (rewards, values, next_values)]
        return real_gae(rewards, values, next_values, gamma, lam)
    monkeypatch.setattr(mfcg, "gae", gae_spy)   # NumPy's GAE, fast paths or not
    for on in (False, True):
        cfg = tiny("drl", dim=2, td_control_variate=on, target_every=0, rollout=3, readable=readable,
                   dtype="float64")
        state = mfcg.init_state(cfg)
        field = mfcg.MeanField(*(np.zeros(2) for _ in range(3)))
        for n in range(cfg.rollout):
            a, r, x_next, logp = mfcg.act_and_step(state, cfg, state["x"], field, np.random.default_rng(n),
                                                   log_prob=True)
            state["buffer"].append({"x": state["x"], "a": a, "r": r, "x_next": x_next, "logp": logp})
            state["x"] = x_next
        buf = state["buffer"]
        critic = {k: np.array(v, copy=True) for k, v in state["params"]["critic"].items()}   # before PPO
        mfcg.ppo_update(state, cfg, mfcg.learning_rates(cfg, 0), np.random.default_rng(9))
    h, gamma, dt = 1e-6, cfg.problem.discount, cfg.problem.dt
    for m, entry in enumerate(buf):
        x, noise = entry["x"], entry["x_next"] - entry["x"] - dt * entry["a"]
        slope = np.stack([(nets.critic_forward(critic, x + h * e) - nets.critic_forward(critic, x - h * e)) / (2 * h)
                          for e in np.eye(2)], axis=1)
        np.testing.assert_allclose(seen[False][0][m], entry["r"], rtol=1e-12)
        np.testing.assert_allclose(seen[True][0][m], entry["r"] - gamma * (slope * noise).sum(axis=1),
                                   rtol=1e-7, atol=1e-9)
    for k in (1, 2):   # the same critic (init_state draws it from the seed alone) and the same values
        np.testing.assert_array_equal(seen[True][k], seen[False][k])
    assert np.abs(seen[True][0] - seen[False][0]).max() > 1e-3   # the noise was there to take out


# --- resume, dimensions, non-finite values -------------------------------------------------------

@pytest.mark.parametrize("readable", [False, True])
@pytest.mark.parametrize("algo", ["ac", "b", "m", "drl"])
def test_resume_is_bit_for_bit(algo, readable, tmp_path):
    """2N steps in one go equal N steps, a checkpoint, a fresh process state, N steps,
    with the fast paths and with the readable definitions (Config.readable)."""
    _check_resume(tmp_path, algo, readable=readable)


@pytest.mark.parametrize("algo", ["b", "m", "drl"])
def test_resume_with_antithetic_agents_is_bit_for_bit(algo, tmp_path):
    _check_resume(tmp_path, algo, antithetic=True)


@pytest.mark.parametrize("algo", ["ac", "b", "m"])
def test_resume_with_restarts_and_the_control_variate_is_bit_for_bit(algo, tmp_path):
    """With restarts that happen (a box of ±0.8) and the TD target's control variate."""
    _check_resume(tmp_path, algo, restart_beyond=0.8, td_control_variate=True)


def test_resume_of_drl_with_the_control_variate_is_bit_for_bit(tmp_path):
    _check_resume(tmp_path, "drl", td_control_variate=True)


def test_resume_of_drl_with_restarts_is_bit_for_bit(tmp_path):
    _check_resume(tmp_path, "drl", restart_beyond=0.8)


def _check_resume(tmp_path, algo, **settings):
    cfg = tiny(algo, steps=22, eval_every=5, checkpoint_every=100, langevin_every=3, rollout=4,
               **settings)
    whole = mfcg.train(cfg)
    first = mfcg.train(cfg, run_dir=str(tmp_path), until=11)  # stops mid-rollout for DRL
    assert first["step"] == 11 and os.path.exists(tmp_path / "checkpoint.npz")
    state, cfg2 = mfcg.load_checkpoint(str(tmp_path / "checkpoint.npz"))
    assert cfg2 == cfg
    resumed = mfcg.train(cfg2, state)
    a, b = _arrays(whole), _arrays(resumed)
    assert set(a) == set(b)
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)
    assert _history(whole) == _history(resumed)


def _history(state):
    return [{k: v for k, v in r.items() if k not in mfcg.TIMING_KEYS} for r in state["history"]]


def _refuse_fast_paths(monkeypatch):
    """Make every fast path fail if called, so a run that finishes used none of them."""
    def refuse(name):
        def fail(*args, **kwargs):
            raise AssertionError(f"Config.readable ran the fast path {name}")
        return fail
    for name in ("adam_step", "langevin_score_net", "gae_by_matmul"):
        monkeypatch.setattr(mfcg, name, refuse(name))
    monkeypatch.setattr(fastpaths, "_chunks", refuse("chunk_mean/in_chunks in chunks"))
    monkeypatch.setattr(fastpaths, "_THREADS", None)  # concurrently on threads: None.map fails
    monkeypatch.setattr(fastpaths, "PARALLEL_MIN_WORK", 0)  # ... as it would at any size


# Each case: (settings, tolerance). None: bit for bit, where the arithmetic is the same.
# Otherwise (rtol, atol), float64, and the reason the two sum in another order.
READABLE_CASES = {
    "ac": [(dict(), None)],
    "b": [(dict(target_every=3, score_warmup=20, grad_clip=0.0), None),
          # clipping: clip_grad_norm sums the squares array by array, then the arrays; the
          # fused update sums them over the one buffer, so the scale can differ in its last bit
          (dict(grad_clip=0.01, dtype="float64"), (1e-10, 1e-13))],
    "m": [(dict(grad_clip=0.0), None),
          (dict(grad_clip=0.01, dtype="float64"), (1e-10, 1e-13))],
    # PPO: one mean over all the rows of a minibatch, against the chunk means (one time step
    # each) weighted by their share of the rows; measured: 3e-16 relative in float64
    "drl": [(dict(ppo_epochs=2, ppo_minibatches=2, grad_clip=0.0, dtype="float64"), (1e-9, 1e-12))],
}


@pytest.mark.parametrize("algo", ["ac", "b", "m", "drl"])
def test_the_readable_switch_trains_to_the_same_numbers(algo, monkeypatch):
    """Config.readable trains with the readable definitions end to end (mfcg.langevin, and
    clip_grad_norm and adam_update on plain dicts of arrays, the loop gae, PPO's losses on
    all rows at once, no threads; no fast path is called) and reaches the fast paths'
    parameters, Adam moments, pools, agents and history: bit for bit where the arithmetic
    is the same, else within READABLE_CASES' tolerance."""
    for settings, tolerance in READABLE_CASES[algo]:
        cfg = tiny(algo, steps=40, eval_every=10, **settings)
        fast = mfcg.train(cfg)
        with monkeypatch.context() as m:
            _refuse_fast_paths(m)
            readable = mfcg.train(replace(cfg, readable=True))
        assert all(type(p) is dict for p in readable["params"].values())
        a, b = _arrays(fast), _arrays(readable)
        assert set(a) == set(b)
        for k in a:
            if tolerance is None:
                np.testing.assert_array_equal(b[k], a[k], err_msg=f"{settings} {k}")
            else:
                np.testing.assert_allclose(b[k], a[k], rtol=tolerance[0], atol=tolerance[1], err_msg=f"{settings} {k}")
        if tolerance is None:
            assert _history(readable) == _history(fast)
        else:
            for rec_a, rec_b in zip(_history(fast), _history(readable), strict=True):
                assert rec_b == pytest.approx(rec_a, rel=1e-7, abs=1e-12, nan_ok=True), settings


def test_a_state_and_a_config_of_different_readable_settings_are_refused():
    cfg = tiny("b", steps=4)
    with pytest.raises(ValueError, match=r"a state made for readable=False \(its networks are FlatParams\) "
                                         r"cannot train with readable=True"):
        mfcg.train(replace(cfg, readable=True), mfcg.init_state(cfg))
    with pytest.raises(ValueError, match=r"readable=True \(its networks are plain dicts\) cannot train with readable=False"):
        mfcg.train(cfg, mfcg.init_state(replace(cfg, readable=True)))


@pytest.mark.parametrize("algo", ["ac", "b", "m", "drl"])
def test_trainers_run_in_three_dimensions(algo):
    cfg = tiny(algo, dim=3, steps=8, eval_every=8)
    state = mfcg.train(cfg)
    assert state["x"].shape == (cfg.batch, 3) and state["pool_local"].shape == (cfg.n_samples, 3)
    rec = state["history"][-1]
    assert all(math.isfinite(rec[k]) for k in ("control_rmse", "value_rmse", "mean_error", "local_std"))
    assert math.isnan(rec["local_mean_density"])  # the read-out is 1-d only


def test_non_finite_parameter_stops_the_run_and_keeps_the_checkpoint(tmp_path):
    """Nothing inside a step waits for the device, so a non-finite loss is found at the
    next evaluation, before any checkpoint is written from the bad state (the last good
    checkpoint stays), and named with the step it first appeared in: by step 20 every
    network's loss is nan, but the critic's was first, in step 11."""
    cfg = tiny("b", steps=30, eval_every=10, checkpoint_every=10)
    state = mfcg.train(cfg, run_dir=str(tmp_path), until=10)
    state["params"]["critic"]["W2"][0, 0] = np.nan
    with pytest.raises(FloatingPointError, match=r"^non-finite critic loss at step 11$"):
        mfcg.train(cfg, state, run_dir=str(tmp_path))
    assert state["step"] == 20
    good, _ = mfcg.load_checkpoint(str(tmp_path / "checkpoint.npz"))
    assert good["step"] == 10
    assert all(np.all(np.isfinite(al.to_numpy(v))) for v in good["params"]["critic"].values())


@pytest.mark.filterwarnings("ignore:invalid value:RuntimeWarning")  # the inf it injects
def test_non_finite_pool_stops_the_run_at_the_next_check(tmp_path):
    """A checkpoint that is not an evaluation step checks too. An infinite Langevin sample
    makes m̃ infinite, so the first non-finite loss is the critic's, in the next step; with
    the losses finite, the check names the pool itself."""
    cfg = tiny("b", steps=30, eval_every=10, checkpoint_every=5)
    state = mfcg.train(cfg, run_dir=str(tmp_path), until=10)
    state["pool_local"][3, 0] = np.inf
    loop = rundir.Loop(state, cfg)
    with pytest.raises(FloatingPointError, match=r"^non-finite pool_local at step 10: "):
        loop._check_finite()
    with pytest.raises(FloatingPointError, match=r"^non-finite critic loss at step 11$"):
        mfcg.train(cfg, state, run_dir=str(tmp_path))
    assert state["step"] == 15  # found at the checkpoint after step 15, not at step 20
    good, _ = mfcg.load_checkpoint(str(tmp_path / "checkpoint.npz"))
    assert good["step"] == 10


def test_evaluation_does_not_touch_the_training_stream():
    cfg = tiny("b", steps=10, eval_every=10)
    state = mfcg.train(cfg)
    before = _arrays(state)
    mfcg.evaluate(state, cfg)
    assert _changed(before, _arrays(state)) == set()


def test_a_zero_mean_actor_starts_at_no_action_and_changes_nothing_else():
    """actor_zero_mean zeroes the mean head alone: every other initial array is as without it,
    the first mean actions are 0, and a step still moves the mean head."""
    cfg = tiny("b", dim=3)
    plain, zero = mfcg.init_state(cfg), mfcg.init_state(replace(cfg, actor_zero_mean=True))
    assert _changed(_arrays(plain), _arrays(zero)) == {"actor.Wm", "actor.bm"}
    assert not np.any(al.to_numpy(zero["params"]["actor"]["Wm"])) and not np.any(al.to_numpy(zero["params"]["actor"]["bm"]))
    mean = nets.actor_forward(zero["params"]["actor"], zero["x"])[0]
    assert not np.any(al.to_numpy(mean))
    after = _arrays(mfcg.train(replace(cfg, actor_zero_mean=True, steps=1), zero))
    assert {"actor.Wm", "actor.bm"} <= _changed(_arrays(mfcg.init_state(replace(cfg, actor_zero_mean=True))), after)


def test_a_zero_critic_starts_flat_and_changes_nothing_else():
    """critic_zero_init zeroes the critic's output layer (and so its target's) alone: V and
    its slope start at 0 everywhere, every other initial array is as without it, and a step
    moves the output layer (then the hidden layer can learn: its gradient goes through W2)."""
    cfg = tiny("b", dim=3, actor_gradient="pathwise", target_every=200)
    plain, zero = mfcg.init_state(cfg), mfcg.init_state(replace(cfg, critic_zero_init=True))
    assert _changed(_arrays(plain), _arrays(zero)) == {"critic.W2", "critic.b2", "target.W2", "target.b2"}
    v, slope = nets.critic_value_and_input_grad(zero["params"]["critic"], zero["x"])
    assert not np.any(al.to_numpy(v)) and not np.any(al.to_numpy(slope))
    after = _arrays(mfcg.train(replace(cfg, critic_zero_init=True, steps=2), zero))
    assert {"critic.W2", "critic.b2", "critic.W1"} <= _changed(_arrays(mfcg.init_state(replace(cfg, critic_zero_init=True))), after)


def test_evaluation_chains_default_to_the_pools_size_and_only_change_the_evaluation():
    """eval_chains = 0 draws the pools' n_samples fresh chains, the same numbers as naming
    that count; another count changes each law's samples, not a trained weight."""
    cfg = tiny("b", dim=2, steps=10, eval_every=10)
    state = mfcg.train(cfg)
    shapes = lambda c: [p.shape for p in mfcg.fresh_samples(state, c, mfcg.STREAM_EVAL)[1:]]  # noqa: E731
    assert shapes(cfg) == [(cfg.n_samples, 2)] * 2 and shapes(replace(cfg, eval_chains=77)) == [(77, 2)] * 2
    same = [json.dumps(mfcg.evaluate(state, c), sort_keys=True) for c in (cfg, replace(cfg, eval_chains=cfg.n_samples))]
    assert same[0] == same[1]
    more = mfcg.evaluate(state, replace(cfg, eval_chains=4 * cfg.n_samples))
    assert more["local_mean"] != mfcg.evaluate(state, cfg)["local_mean"]
    trained = _arrays(mfcg.train(replace(cfg, eval_chains=77)))
    assert _changed(_arrays(state), trained) == set()


# --- end to end on the quick preset -----------------------------------------------------------

@pytest.mark.parametrize("algo", ["ac", "drl"])
def test_quick_preset_end_to_end(algo):
    """One full quick run of the two learners that do not settle in the quick preset's
    budget, seed 0. What held on every seed measured (0–4, make reproduce): their controls
    restore (slope < 0; flipping the actor's advantage sign gives a positive slope and a
    diverging population); DRL's local score network tracks its broad population (mean
    within half a std); for AC's single agent the local Langevin pool follows the agent.
    B and M, which settle, are tested on the steady preset (tests/test_steady.py), which is
    theirs plus the score networks' warm start, antithetic agents and a smaller Langevin
    step."""
    cfg = preset("quick", algo, seed=0)
    state = mfcg.train(cfg)
    rec = state["history"][-1]
    assert rec["step"] == cfg.steps and len(state["history"]) == cfg.steps // cfg.eval_every
    assert all(math.isfinite(v) for v in rec.values()), rec
    if algo == "ac":
        assert rec["control_slope"] < 0.0
        assert abs(rec["local_mean"] - rec["agents_mean"]) < 0.5
    else:
        assert rec["control_slope"] < -0.05
        assert abs(rec["local_mean_density"] - rec["agents_mean"]) < rec["agents_std"]


def test_ctrl_c_finishes_the_step_checkpoints_and_resumes_exactly(tmp_path, capsys):
    """SIGINT (Ctrl-C) mid-run: the current step completes, the checkpoint is written at
    that step, KeyboardInterrupt propagates, and resuming gives the uninterrupted result.
    A signal during an evaluation (after step 10's work) stops after step 10, and the
    message says so."""
    import signal
    cfg = tiny("b", steps=20, eval_every=5, checkpoint_every=100)
    handler_before = signal.getsignal(signal.SIGINT)  # SIG_IGN under nohup, else Python's
    whole = mfcg.train(cfg)

    def interrupt(record):
        if record["step"] == 10:
            os.kill(os.getpid(), signal.SIGINT)  # delivered to the loop's handler

    with pytest.raises(KeyboardInterrupt, match="interrupted after step 10"):
        mfcg.train(cfg, run_dir=str(tmp_path), on_eval=interrupt)
    assert "SIGINT: stopping after step 10, then checkpointing" in capsys.readouterr().err
    state, cfg2 = mfcg.load_checkpoint(str(tmp_path / "checkpoint.npz"))
    assert state["step"] == 10
    resumed = mfcg.train(cfg2, state)
    a, b = _arrays(whole), _arrays(resumed)
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)
    assert signal.getsignal(signal.SIGINT) == handler_before  # handler restored


def test_ctrl_c_while_checkpointing_says_what_it_stops(tmp_path, monkeypatch, capsys):
    """A Ctrl-C as the last step's checkpoint is written: the run has ended there, and the
    message says so. A second Ctrl-C while the stop's checkpoint is written: stopped at
    once, and the message says the checkpoint holds that step (written first here)."""
    import signal
    cfg = tiny("b", steps=20, eval_every=5, checkpoint_every=100)
    real = rundir.save_checkpoint

    def save_then_interrupt(path, state, cfg):
        real(path, state, cfg)
        os.kill(os.getpid(), signal.SIGINT)

    monkeypatch.setattr(rundir, "save_checkpoint", save_then_interrupt)  # where the loop looks it up
    assert mfcg.train(cfg, run_dir=str(tmp_path / "a"))["step"] == 20
    assert "SIGINT: stopping after step 20, then checkpointing" in capsys.readouterr().err

    def interrupt(record):
        if record["step"] == 10:
            os.kill(os.getpid(), signal.SIGINT)

    with pytest.raises(KeyboardInterrupt, match="interrupted again while checkpointing step 10: stopped at once"):
        mfcg.train(cfg, run_dir=str(tmp_path / "b"), on_eval=interrupt)
    assert mfcg.load_checkpoint(str(tmp_path / "b" / "checkpoint.npz"))[0]["step"] == 10


# --- the pieces the GPU path reshaped -----------------------------------------------------------

def test_gae_by_matmul_is_gae():
    rng = np.random.default_rng(4)
    r, v, vn = (rng.normal(size=(50, 7)) for _ in range(3))
    for lam in (0.0, 0.95, 1.0):
        a_loop, ret_loop = mfcg.gae(r, v, vn, 0.99, lam)
        a_mat, ret_mat = fastpaths.gae_by_matmul(r, v, vn, 0.99, lam)
        np.testing.assert_allclose(a_mat, a_loop, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(ret_mat, ret_loop, rtol=1e-12, atol=1e-12)


def test_log_prob_kept_at_acting_time_is_the_recomputed_one():
    p = nets.init_actor(2, 2, np.random.default_rng(0), hidden=8, xp=np)
    x = np.random.default_rng(1).normal(size=(30, 2)).astype(np.float32)
    a, logp = nets.actor_sample(p, x, np.random.default_rng(2), log_prob=True)
    np.testing.assert_array_equal(a, nets.actor_sample(p, x, np.random.default_rng(2)))
    np.testing.assert_array_equal(logp, nets.actor_log_prob(p, x, a))


def test_ppo_update_in_big_chunks_equals_one_time_step_per_chunk(monkeypatch):
    """The GPU's chunking of the rollout (many time steps per chunk) gives the update the
    CPU's one-step chunks give, up to float32 rounding of the weighted means."""
    cfg = tiny("drl", steps=8, rollout=8, batch=16, dtype="float64")
    results = []
    for rows in (16, 48):  # one time step (16 rows) per chunk / 48 rows, the last chunk 32
        monkeypatch.setitem(fastpaths.PPO_CHUNK_ROWS, al.backend_name(), rows)
        state = mfcg.train(cfg)
        results.append(_arrays(state))
    for k in results[0]:
        np.testing.assert_allclose(results[1][k], results[0][k], rtol=1e-9, atol=1e-12, err_msg=k)


def test_a_step_draws_from_its_own_keyed_stream():
    """Step n's numbers depend on (seed, n) alone: running steps 0-4, or loading the state
    after step 2 into a fresh process state, gives the same step 3."""
    cfg = tiny("m", steps=5, langevin_every=1)
    a = mfcg.train(cfg, until=5)
    b = mfcg.train(cfg, until=3)
    b = mfcg.train(cfg, {**b, "history": list(b["history"])}, until=5)
    for k, v in _arrays(a).items():
        np.testing.assert_array_equal(_arrays(b)[k], v, err_msg=k)
    other = mfcg.train(tiny("m", steps=5, langevin_every=1, seed=1), until=5)
    assert not np.array_equal(al.to_numpy(other["x"]), al.to_numpy(a["x"]))


def test_a_checkpoint_of_the_older_format_is_refused_in_one_line(tmp_path):
    cfg = tiny("b", steps=4, eval_every=2, checkpoint_every=2)
    mfcg.train(cfg, run_dir=str(tmp_path))
    path = tmp_path / "checkpoint.npz"
    with np.load(path) as z:
        data = {k: z[k] for k in z.files}
    import json
    meta = json.loads(str(data["meta"]))
    del meta["format"]
    data["meta"] = np.array(json.dumps(meta))
    np.savez(path, **data)
    with pytest.raises(ValueError, match=r"older version of mfcg \(format 1, this one reads 2"):
        mfcg.load_checkpoint(str(path))


def test_one_b_step_runs_few_enough_functions_to_be_read():
    """A student stepping through one B step (quick preset, NumPy, the main thread, as
    sys.settrace sees it) meets at most 40 of the project's functions, the trainer's step
    functions among them; the fast paths' worker threads are not on that path."""
    import sys
    if al.get_xp() is not np:
        pytest.skip("NumPy only: the path a student traces on a CPU")
    root = os.path.dirname(os.path.abspath(mfcg.__file__))
    seen = set()

    def tracer(frame, event, arg):
        path = os.path.abspath(frame.f_code.co_filename)
        if event == "call" and path.endswith(".py") and os.path.dirname(path) == root:
            seen.add((os.path.basename(path), frame.f_code.co_qualname))

    cfg = preset("quick", "b", eval_every=10**9, checkpoint_every=10**9)
    state = mfcg.train(cfg, until=1)
    sys.settrace(tracer)
    try:
        mfcg.train(cfg, state, until=2)
    finally:
        sys.settrace(None)
    assert state["step"] == 2
    names = {name for _, name in seen}
    assert {"train_b", "score_update", "langevin_refresh", "act_and_step", "actor_critic_update"} <= names
    assert len(seen) <= 40, sorted(seen)


def test_lr_peak_is_the_schedules_peak():
    """lr_peak scales the rates at the end of the schedule's warm-up (step 1 of 11) and
    nowhere else at its ends: ×1 at step 0, ×0.25 at the last step; the paper's is 10."""
    for peak in (10.0, 3.0):
        cfg = preset("quick", "b", steps=11, lr_peak=peak)
        rates = [mfcg.learning_rates(cfg, n)["actor"] / cfg.lr_actor for n in (0, 1, 10)]
        assert rates == pytest.approx([1.0, peak, 0.25], rel=1e-12)
    assert preset("paper", "b").lr_peak == 10.0 and preset("robust", "m").lr_peak == 10.0
    with pytest.raises(ValueError, match="lr_peak must be > 0"):
        preset("quick", "b", lr_peak=0.0)


def test_lr_final_is_the_schedules_last_factor():
    """lr_final scales the rates at the last step only among the schedule's ends (×1 at step
    0, ×lr_peak at step 1 of 11), halfway down it is the mean of peak and final; the
    paper's is 0.25."""
    for final in (0.25, 0.05):
        cfg = preset("quick", "b", steps=11, lr_final=final)
        rates = [mfcg.learning_rates(cfg, n)["critic"] / cfg.lr_critic for n in (0, 1, 10)]
        assert rates == pytest.approx([1.0, 10.0, final], rel=1e-12)
    cfg = preset("quick", "b", steps=21, lr_final=0.05)   # step 2 ends the warm-up, 20 the run
    assert mfcg.learning_rates(cfg, 11)["actor"] / cfg.lr_actor == pytest.approx((10.0 + 0.05) / 2)
    assert preset("paper", "b").lr_final == 0.25 and preset("robust", "drl").lr_final == 0.25
    with pytest.raises(ValueError, match="lr_final must be > 0"):
        preset("quick", "b", lr_final=0.0)
