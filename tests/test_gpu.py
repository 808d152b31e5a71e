"""The same functions give the same numbers on CuPy as on NumPy. These tests skip, saying
why, on machines without CuPy or without a GPU (CI has neither)."""
import numpy as np
import pytest

import autograd_lite as al
import nets


def _cupy_or_skip():
    try:
        import cupy
    except ImportError:
        pytest.skip("CuPy is not installed: GPU tests need it (see requirements-gpu.txt)")
    try:
        if cupy.cuda.runtime.getDeviceCount() == 0:
            pytest.skip("CuPy sees no GPU")
    except Exception as exc:  # no driver
        pytest.skip(f"CuPy cannot reach a GPU: {exc}")
    return cupy


@pytest.fixture
def cp():
    return _cupy_or_skip()


def _both(params, cp):
    return params, {k: cp.asarray(v) for k, v in params.items()}


@pytest.mark.parametrize("probes", [False, True])
def test_score_loss_same_on_gpu(cp, probes):
    rng = np.random.default_rng(0)
    p_np, p_cp = _both(nets.init_score(3, rng, dtype=np.float64, xp=np), cp)
    x = rng.normal(size=(64, 3))
    z = rng.standard_normal((64, 3)) if probes else None
    l_np, g_np = nets.score_loss_and_grad(p_np, x, z)
    l_cp, g_cp = nets.score_loss_and_grad(p_cp, cp.asarray(x), None if z is None else cp.asarray(z))
    assert float(l_cp) == pytest.approx(float(l_np), rel=1e-10)
    for k in g_np:
        np.testing.assert_allclose(al.to_numpy(g_cp[k]), g_np[k], rtol=1e-9, atol=1e-12)


def test_actor_critic_ppo_same_on_gpu(cp):
    rng = np.random.default_rng(1)
    pa_np, pa_cp = _both(nets.init_actor(2, 2, rng, dtype=np.float64, xp=np), cp)
    pc_np, pc_cp = _both(nets.init_critic(2, rng, dtype=np.float64, xp=np), cp)
    x, a = rng.normal(size=(32, 2)), rng.normal(size=(32, 2))
    adv, y = rng.normal(size=32), rng.normal(size=32)
    logp_old = nets.actor_log_prob(pa_np, x, a) + rng.normal(0, 0.3, size=32)
    X, A, ADV, Y, LO = (cp.asarray(v) for v in (x, a, adv, y, logp_old))
    pairs = [
        (nets.actor_loss_and_grad(pa_np, x, a, adv), nets.actor_loss_and_grad(pa_cp, X, A, ADV)),
        (nets.critic_loss_and_grad(pc_np, x, y), nets.critic_loss_and_grad(pc_cp, X, Y)),
        (nets.ppo_loss_and_grad(pa_np, x, a, adv, logp_old, 0.2, 0.01),
         nets.ppo_loss_and_grad(pa_cp, X, A, ADV, LO, 0.2, 0.01)),
    ]
    for (l_np, g_np), (l_cp, g_cp) in pairs:
        assert float(l_cp) == pytest.approx(float(l_np), rel=1e-10)
        for k in g_np:
            np.testing.assert_allclose(al.to_numpy(g_cp[k]), g_np[k], rtol=1e-9, atol=1e-12)


def test_adam_same_on_gpu(cp):
    rng = np.random.default_rng(2)
    p_np, p_cp = _both({"w": rng.normal(size=(4, 3))}, cp)
    s_np, s_cp = al.adam_init(p_np), al.adam_init(p_cp)
    for _ in range(5):
        g = rng.normal(size=(4, 3))
        al.adam_update(p_np, {"w": g}, s_np, lr=1e-2)
        al.adam_update(p_cp, {"w": cp.asarray(g)}, s_cp, lr=1e-2)
    np.testing.assert_allclose(al.to_numpy(p_cp["w"]), p_np["w"], rtol=1e-12)


@pytest.mark.parametrize("d", [1, 3])
def test_fused_langevin_kernel_matches_its_numpy_twin(cp, d):
    """The CUDA kernel and langevin_score_net on equal inputs (same pool, weights, normals),
    in float64: the same map, up to the order of floating-point additions."""
    import mfcg
    rng = np.random.default_rng(3)
    p = nets.init_score(d, rng, dtype=np.float64, xp=np)
    pool = rng.standard_normal((1000, d))
    noise = rng.standard_normal((200, 1000, d))
    ref = mfcg.langevin_score_net(p, pool, noise, 0.05)
    gpu = mfcg.langevin_score_net({k: cp.asarray(v) for k, v in p.items()}, cp.asarray(pool),
                                  cp.asarray(noise), 0.05)
    np.testing.assert_allclose(al.to_numpy(gpu), ref, rtol=1e-9, atol=1e-11)
