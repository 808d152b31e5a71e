"""The fast paths (fastpaths.py) give the same numbers as the readable definitions: the
Langevin kernel, the outer-product matmul, chunked means, threads, the flat Adam update;
the random streams; the CUDA sources compile. And `bench` runs and reports."""
import json
import math
import os
import re
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import autograd_lite as al
import fastpaths
import mfcg
import nets


@pytest.mark.parametrize("d", [1, 3])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_langevin_kernel_is_bit_for_bit_the_generic_sampler(d, dtype):
    """Given the normals the generic sampler draws, the specialised kernel (the NumPy twin
    of a fused GPU kernel) returns exactly the same pool."""
    rng = np.random.default_rng(0)
    p = nets.init_score(d, rng, hidden=32, dtype=dtype, xp=np)
    pool = rng.standard_normal((300, d)).astype(dtype)
    noise = np.random.default_rng(9).standard_normal((40, 300, d), dtype=dtype)
    generic = mfcg.langevin(lambda z: nets.score_forward(p, z), pool, noise, 0.05)
    fast = fastpaths.langevin_score_net(p, pool, noise, 0.05)
    assert fast.dtype == dtype
    np.testing.assert_array_equal(fast, generic)


def test_langevin_kernel_rejects_bad_input():
    """A wrongly shaped noise is refused. A non-finite pool is not checked here (that would
    stop the GPU at every refresh): the loop checks the pools at evaluations instead
    (tests/test_trainers.py::test_non_finite_pool_stops_the_run_at_the_next_check)."""
    p = nets.init_score(1, np.random.default_rng(0), xp=np)
    pool = np.zeros((5, 1), np.float32)
    with pytest.raises(ValueError, match=r"noise must have shape \(n_steps, 5, 1\)"):
        fastpaths.langevin_score_net(p, pool, np.zeros((3, 4, 1), np.float32), 0.05)


def test_outer_product_matmul_is_exact():
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(500, 1)).astype(np.float32), rng.normal(size=(1, 64)).astype(np.float32)
    np.testing.assert_array_equal(al.matmul(a, b), a @ b)
    c = rng.normal(size=(500, 3))
    np.testing.assert_array_equal(al.matmul(c, rng.normal(size=(3, 4)) * 0 + 1), c @ np.ones((3, 4)))


def test_chunk_mean_is_the_full_batch_mean():
    """Chunks of 50 rows, and of 60 (the last one short), give the loss and gradients of
    one call on all 200 rows; a chunk that holds every row is that call."""
    rng = np.random.default_rng(2)
    p = nets.init_critic(2, rng, hidden=16, dtype=np.float64, xp=np)
    x, y = rng.normal(size=(200, 2)), rng.normal(size=200)
    loss_all, grads_all = nets.critic_loss_and_grad(p, x, y)
    for rows in (50, 60):
        loss, grads = fastpaths.chunk_mean(nets.critic_loss_and_grad, (p, x, y), rows)
        assert loss == pytest.approx(float(loss_all), rel=1e-12)
        for k in grads_all:
            np.testing.assert_allclose(grads[k], grads_all[k], rtol=1e-11, atol=1e-14)
    loss, grads = fastpaths.chunk_mean(nets.critic_loss_and_grad, (p, x, y), 200)
    assert loss == loss_all and all(np.array_equal(grads[k], grads_all[k]) for k in grads_all)
    np.testing.assert_array_equal(fastpaths.in_chunks(nets.critic_forward, (p, x), 60), nets.critic_forward(p, x))


def test_threads_do_not_change_results(monkeypatch):
    """A B step with the pieces on two threads equals the same step run sequentially."""
    if al.get_xp() is not np:
        pytest.skip("NumPy only: the two threads are NumPy's fast path, never used on CuPy")
    cfg = mfcg.preset("quick", "b", batch=2048, n_samples=1000, steps=3)
    results = []
    for min_work in (0, 10 ** 12):  # always threads / never threads
        monkeypatch.setattr(fastpaths, "PARALLEL_MIN_WORK", min_work)  # read by fastpaths.concurrently
        state = mfcg.train(cfg, until=3)
        results.append({k: v.copy() for k, v in state["params"]["actor"].items()} | {"pool": state["pool_local"].copy()})
    for k in results[0]:
        np.testing.assert_array_equal(results[0][k], results[1][k])


@pytest.mark.parametrize("preset", ["paper", "lean"])
def test_bench_writes_its_table(tmp_path, preset):
    script = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "run_experiments.py")
    p = subprocess.run([sys.executable, script, "bench", "--algo", "m", "--steps", "2", "--preset", preset,
                        "--out", str(tmp_path)], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    (device_dir,) = os.listdir(tmp_path)  # one directory per device, named after it
    assert device_dir == ("cpu-%d-cores" % os.cpu_count() if al.get_xp() is np else device_dir)
    assert device_dir.startswith("cpu-" if al.get_xp() is np else "gpu-")
    tmp_path = tmp_path / device_dir / preset
    with open(tmp_path / "bench.json") as fh:
        result = json.load(fh)
    assert result["device"] and result["preset"] == preset
    m = result["algorithms"]["m"]
    assert m["steps_per_second"] > 0 and m["timed_steps"] == 2 and m["batch"] == 8192
    assert set(m["seconds_per_step"]) == {"langevin", "scores", "actor_critic", "environment", "other"}
    assert result["bare_tanh_us_per_million"] > 0
    table = (tmp_path / "BENCH.md").read_text()
    assert "| m |" in table
    iterations = mfcg.preset(preset, "b").langevin_steps
    assert table.startswith(f"{preset.capitalize()} preset (B = 8192, k = 1000, {iterations} Langevin iterations")
    assert result["sizes"]["langevin_steps"] == iterations


def _cuda_sources():
    """Every CUDA source of the project, with the #defines it is compiled with."""
    out = []
    for name, source in fastpaths.CUDA_SOURCES.items():
        for ctype in ("float", "double"):
            out.append((f"{name}-{ctype}", f"#define T {ctype}\n" + source))
    for ctype, d, h in (("float", 1, 128), ("double", 3, 40)):  # H not a multiple of 32 too
        out.append((f"langevin_warp-{ctype}-d{d}-H{h}",
                    f"#define T {ctype}\n#define D {d}\n#define H {h}\n" + fastpaths.LANGEVIN_CUDA))
    return out


@pytest.mark.parametrize("name, source", _cuda_sources(), ids=[n for n, _ in _cuda_sources()])
def test_cuda_kernels_compile(tmp_path, name, source):
    """The GPU twins compile (to PTX for an H100/H200, sm_90, with the options CuPy is given;
    no GPU needed), and the Langevin kernel keeps its weights in registers: no local memory."""
    import shutil
    nvcc = shutil.which("nvcc")
    if nvcc is None:
        pytest.skip("nvcc is not installed: the CUDA sources are compiled only where it is")
    src, ptx = tmp_path / "k.cu", tmp_path / "k.ptx"
    src.write_text(source)
    p = subprocess.run([nvcc, "-ptx", "-arch=sm_90", *fastpaths.CUDA_OPTIONS, "-o", str(ptx), str(src)],
                       capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    text = ptx.read_text()
    assert f".entry {name.split('-')[0]}(" in text
    if name.startswith("langevin"):
        d = int(re.search(r"-d(\d+)-", name).group(1))
        words = 2 if "double" in name else 1  # a double is shuffled as two 32-bit words
        assert ".local" not in text and text.count("shfl.sync") == 5 * d * words  # 5 per coordinate


# --- flat buffers: the layout, and the fused clip + Adam equal to the readable pair ---------

def _net(rng, dtype=np.float64):
    return {"W1": rng.normal(size=(3, 5)).astype(dtype), "b1": rng.normal(size=5).astype(dtype),
            "W2": rng.normal(size=(5, 2)).astype(dtype), "b2": rng.normal(size=2).astype(dtype)}


def test_flat_params_are_views_of_one_buffer():
    arrays = _net(np.random.default_rng(0))
    p = fastpaths.FlatParams(arrays)
    assert list(p) == list(arrays) and p.flat.shape == (15 + 5 + 10 + 2,)
    for k in arrays:
        np.testing.assert_array_equal(p[k], arrays[k])
        assert np.shares_memory(p[k], p.flat)
    p.flat[:] = 0.0                       # an update of the buffer is seen through every name
    assert all(not v.any() for v in p.values())
    p["b2"][...] = 7.0                    # and a write through a name lands in the buffer
    assert p.flat[-1] == 7.0
    with pytest.raises(TypeError, match="assign into the view"):
        p["b2"] = np.zeros(2)
    q = p.copy()
    q.flat[:] = 1.0
    assert p.flat[0] == 0.0               # a copy has its own buffer
    np.testing.assert_array_equal(p.pack({k: np.ones_like(v) for k, v in p.items()}), np.ones(32))
    with pytest.raises(ValueError, match="do not match"):
        p.pack({"W1": p["W1"]})
    with pytest.raises(ValueError, match="one dtype"):
        fastpaths.FlatParams({"a": np.zeros(2), "b": np.zeros(2, np.float32)})


@given(st.integers(0, 10_000), st.sampled_from([0.0, 0.01, 1.0, 1e3]))
def test_adam_step_is_clip_then_adam(seed, max_norm):
    """Five fused steps on a flat buffer equal clip_grad_norm + adam_update on the named
    arrays (float64; the norm is summed in another order, hence 1e-12)."""
    rng = np.random.default_rng(seed)
    arrays = _net(rng)
    ref = {k: v.copy() for k, v in arrays.items()}
    flat = fastpaths.FlatParams(arrays)
    s_ref, s_flat = al.adam_init(ref), al.adam_init(flat)
    assert s_flat["m"].shape == flat.flat.shape
    for _ in range(5):
        grads = {k: rng.normal(size=v.shape) * 3.0 for k, v in arrays.items()}
        g_ref = {k: v.copy() for k, v in grads.items()}
        if max_norm:
            al.clip_grad_norm(g_ref, max_norm)
        al.adam_update(ref, g_ref, s_ref, lr=1e-2)
        fastpaths.adam_step(flat, grads, s_flat, lr=1e-2, max_norm=max_norm)
    assert s_flat["t"] == s_ref["t"] == 5
    for k in ref:
        np.testing.assert_allclose(flat[k], ref[k], rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(s_flat["m"], np.concatenate([s_ref["m"][k].ravel() for k in ref]), rtol=1e-11)


def test_adam_step_in_float32_is_adam_update_bit_for_bit_without_clipping():
    """Same operations in the same order: the flat update is exactly the readable one."""
    rng = np.random.default_rng(5)
    arrays = _net(rng, np.float32)
    ref, flat = {k: v.copy() for k, v in arrays.items()}, fastpaths.FlatParams(arrays)
    s_ref, s_flat = al.adam_init(ref), al.adam_init(flat)
    for _ in range(3):
        grads = {k: rng.normal(size=v.shape).astype(np.float32) for k, v in arrays.items()}
        al.adam_update(ref, grads, s_ref, lr=1e-3)
        fastpaths.adam_step(flat, grads, s_flat, lr=1e-3)
    for k in ref:
        np.testing.assert_array_equal(flat[k], ref[k])


def test_clip_scale_on_the_device():
    g = np.array([3.0, 4.0], np.float32)                 # norm 5
    assert float(fastpaths.clip_scale(g, 1.0)) == pytest.approx(0.2)
    assert float(fastpaths.clip_scale(g, 5.0)) == 1.0 and float(fastpaths.clip_scale(g, 50.0)) == 1.0
    assert fastpaths.clip_scale(g, 1.0).dtype == np.float32 and fastpaths.clip_scale(g, 1.0).shape == ()
    assert float(fastpaths.clip_scale(np.array([1e20, 1e20], np.float32), 1.0)) == pytest.approx(1 / (math.sqrt(2) * 1e20))
    assert math.isnan(float(fastpaths.clip_scale(np.array([np.nan, 1.0], np.float32), 1.0)))
    assert float(fastpaths.clip_scale(np.array([np.inf, 1.0], np.float32), 1.0)) == 0.0
    for bad in (np.nan, np.inf):  # either way the clipped update leaves a nan parameter
        p = fastpaths.FlatParams({"w": np.ones(2, np.float32)})
        with np.errstate(invalid="ignore"):
            fastpaths.adam_step(p, {"w": np.array([bad, 1.0], np.float32)}, al.adam_init(p), 0.1, max_norm=1.0)
        assert np.isnan(p["w"][0])


# --- the random streams --------------------------------------------------------------------

# Random123's known answers for Philox4x32-10 (its kat_vectors file): counter, key, output
PHILOX_KAT = [
    ((0, 0, 0, 0), (0, 0), (0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8)),
    ((0xFFFFFFFF,) * 4, (0xFFFFFFFF,) * 2, (0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD)),
    ((0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344), (0xA4093822, 0x299F31D0),
     (0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1)),
]


@pytest.mark.parametrize("counter, key, expected", PHILOX_KAT)
def test_philox_reference_gives_the_known_answers(counter, key, expected):
    out = fastpaths.philox4x32([np.array([c], np.uint32) for c in counter], np.array(key, np.uint32))
    assert out.dtype == np.uint32 and tuple(int(w) for w in out[:, 0]) == expected


def test_philox_normals_are_standard_normal_and_keyed():
    key = np.array([12345, 678], np.uint32)
    w0, w1 = fastpaths.philox_words(key, 0, 200_000)
    z = fastpaths.box_muller(w0, w1)
    assert abs(z.mean()) < 0.01 and abs(z.std() - 1) < 0.01 and np.abs(z).max() < 6.7
    assert abs(np.mean(z ** 4) - 3) < 0.05                      # the normal's kurtosis
    other = fastpaths.box_muller(*fastpaths.philox_words(key, 1, 1000))     # another draw, another key:
    assert not np.allclose(z[:1000], other)                    # other numbers
    assert not np.allclose(z[:1000], fastpaths.box_muller(*fastpaths.philox_words(key + 1, 0, 1000)))
    np.testing.assert_array_equal(fastpaths.box_muller(*fastpaths.philox_words(key, 0, 10)), z[:10])  # a prefix


def test_make_rng_is_keyed_by_its_tuple():
    a = fastpaths.make_rng((3, 10, 0), np).standard_normal(5)
    np.testing.assert_array_equal(a, fastpaths.make_rng((3, 10, 0), np).standard_normal(5))
    assert not np.array_equal(a, fastpaths.make_rng((3, 11, 0), np).standard_normal(5))
