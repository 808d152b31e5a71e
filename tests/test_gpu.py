"""The same functions give the same numbers on CuPy as on NumPy. These tests skip, saying
why, on machines without CuPy or without a GPU (CI has neither)."""
import numpy as np
import pytest

import autograd_lite as al
import fastpaths
import mfcg
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


@pytest.mark.parametrize("d, hidden, k", [(1, 128, 1000), (3, 128, 1000), (2, 40, 1001)])
def test_fused_langevin_kernel_matches_its_numpy_twin(cp, d, hidden, k):
    """The CUDA kernel (a warp per sample) and langevin_score_net on equal inputs (same pool,
    weights, normals), in float64: the same map, up to the order of floating-point
    additions. H = 40 leaves lanes without a second unit; k = 1001 a partly empty block."""
    rng = np.random.default_rng(3)
    p = nets.init_score(d, rng, hidden=hidden, dtype=np.float64, xp=np)
    pool = rng.standard_normal((k, d))
    noise = rng.standard_normal((200, k, d))
    ref = fastpaths.langevin_score_net(p, pool, noise, 0.05)
    gpu = fastpaths.langevin_score_net({k: cp.asarray(v) for k, v in p.items()}, cp.asarray(pool),
                                  cp.asarray(noise), 0.05)
    np.testing.assert_allclose(al.to_numpy(gpu), ref, rtol=1e-9, atol=1e-11)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_fused_adam_kernel_is_the_numpy_update(cp, dtype):
    """adam_flat on CuPy (one kernel, no fused multiply–adds) against its NumPy branch:
    bit for bit, in float32 too, with and without clipping."""
    rng = np.random.default_rng(4)
    n = 5000
    p, m, v = (rng.normal(size=n).astype(dtype) for _ in range(3))
    v = np.abs(v)
    P, Mo, V = cp.asarray(p), cp.asarray(m), cp.asarray(v)
    for t in range(1, 4):
        g = (rng.normal(size=n) * 3).astype(dtype)
        G = cp.asarray(g)
        scale = fastpaths.clip_scale(g, 1.0) if t != 2 else np.ones((), dtype)
        SCALE = fastpaths.clip_scale(G, 1.0) if t != 2 else cp.ones((), dtype)
        np.testing.assert_allclose(al.to_numpy(SCALE), scale, rtol=1e-6)
        SCALE = cp.asarray(scale)  # the same scale on both sides: compare the update alone
        args = (1e-3 / (1 - 0.9 ** t), 0.9, 0.999, 1 - 0.999 ** t, 1e-8)
        fastpaths.adam_flat(p, g, m, v, scale, *args)
        fastpaths.adam_flat(P, G, Mo, V, SCALE, *args)
        for host, dev in ((p, P), (m, Mo), (v, V)):
            np.testing.assert_array_equal(al.to_numpy(dev), host)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_philox_kernel_is_the_numpy_reference(cp, dtype):
    """PhiloxStream's normals are box_muller(philox_words(...)) of the NumPy reference
    (checked against Random123's known answers), draw after draw; its permutation sorts
    the same words."""
    key = np.random.SeedSequence((5, 17, 0)).generate_state(2, dtype=np.uint32)
    stream = fastpaths.PhiloxStream(key)
    for draw in range(2):
        z = al.to_numpy(stream.standard_normal((300, 7), dtype=dtype))
        ref = fastpaths.box_muller(*fastpaths.philox_words(key, draw, 2100)).reshape(300, 7)
        assert z.dtype == dtype
        np.testing.assert_allclose(z, ref.astype(dtype), rtol=1e-12 if dtype == np.float64 else 1e-6, atol=1e-12)
    expected = np.random.default_rng([int(key[0]), int(key[1]), 2]).permutation(5000)
    np.testing.assert_array_equal(al.to_numpy(stream.permutation(5000)), expected)
    assert stream.draws == 3
    assert stream.standard_normal((0, 3), dtype=dtype).shape == (0, 3)  # no launch for nothing


def test_gae_by_matmul_on_gpu_is_gae(cp):
    rng = np.random.default_rng(6)
    r, v, vn = (rng.normal(size=(256, 64)) for _ in range(3))
    a_ref, ret_ref = mfcg.gae(r, v, vn, 0.99, 0.95)
    a, ret = fastpaths.gae_by_matmul(cp.asarray(r), cp.asarray(v), cp.asarray(vn), 0.99, 0.95)
    np.testing.assert_allclose(al.to_numpy(a), a_ref, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(al.to_numpy(ret), ret_ref, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("algo", ["ac", "b", "m", "drl"])
def test_training_steps_never_wait_for_the_gpu(cp, algo):
    """Between evaluations a trainer never reads from the device: CuPy raises
    DeviceSynchronized at any .get(), float(), bool() or device synchronize inside
    allow_synchronize(False). DRL's window holds a PPO update, M's a Langevin refresh and
    minibatches. (A wait inside a C++ library, such as a Thrust sort, would not be seen:
    that is why M's permutation is drawn on the host.)"""
    import cupyx
    if al.get_xp() is not cp:
        pytest.skip("MFCG_BACKEND=numpy: the trainers run on NumPy here")
    cfg = mfcg.preset("quick", algo, batch=1 if algo == "ac" else 64, minibatch=16, n_samples=64,
                      rollout=4, langevin_every=3, steps=100, eval_every=50, target_every=2 if algo == "b" else 0)
    state = mfcg.train(cfg, until=2)  # compiles the kernels
    with cupyx.allow_synchronize(False):
        mfcg.train(cfg, state, until=12)
    assert state["step"] == 12


def test_sum_rows_on_gpu_is_the_column_sum(cp):
    a = np.random.default_rng(7).normal(size=(8192, 128))
    np.testing.assert_allclose(al.to_numpy(al.sum_rows(cp.asarray(a))), a.sum(axis=0), rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(al.to_numpy(al.sum_rows(cp.asarray(a[:5]))), a[:5].sum(axis=0), rtol=1e-12)


def test_antithetic_normals_on_gpu_come_in_pairs(cp):
    z = mfcg.AntitheticNormals(fastpaths.make_rng(3, cp)).standard_normal((6, 2), dtype=np.float32)
    assert isinstance(z, cp.ndarray) and z.dtype == np.float32
    z = cp.asnumpy(z)
    assert np.array_equal(z[3:], -z[:3]) and np.all(z != 0)
