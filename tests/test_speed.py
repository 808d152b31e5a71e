"""The fast paths give the same numbers as the plain ones: the Langevin kernel, the
outer-product matmul, chunked means, threads. And `bench` runs and reports."""
import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest

import autograd_lite as al
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
    generic = mfcg.langevin(lambda z: nets.score_forward(p, z), pool, 40, 0.05, np.random.default_rng(9))
    noise = np.random.default_rng(9).standard_normal((40, 300, d), dtype=dtype)
    fast = mfcg.langevin_score_net(p, pool, noise, 0.05)
    assert fast.dtype == dtype
    np.testing.assert_array_equal(fast, generic)


def test_langevin_kernel_rejects_bad_input():
    """A wrongly shaped noise is refused. A non-finite pool is not checked here (that would
    stop the GPU at every refresh): the loop checks the pools at evaluations instead
    (tests/test_trainers.py::test_non_finite_pool_stops_the_run_at_the_next_check)."""
    p = nets.init_score(1, np.random.default_rng(0), xp=np)
    pool = np.zeros((5, 1), np.float32)
    with pytest.raises(ValueError, match=r"noise must have shape \(n_steps, 5, 1\)"):
        mfcg.langevin_score_net(p, pool, np.zeros((3, 4, 1), np.float32), 0.05)


def test_outer_product_matmul_is_exact():
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(500, 1)).astype(np.float32), rng.normal(size=(1, 64)).astype(np.float32)
    np.testing.assert_array_equal(al.matmul(a, b), a @ b)
    c = rng.normal(size=(500, 3))
    np.testing.assert_array_equal(al.matmul(c, rng.normal(size=(3, 4)) * 0 + 1), c @ np.ones((3, 4)))


def test_chunk_mean_is_the_full_batch_mean():
    rng = np.random.default_rng(2)
    p = nets.init_critic(2, rng, hidden=16, dtype=np.float64, xp=np)
    x, y = rng.normal(size=(4, 50, 2)), rng.normal(size=(4, 50))
    loss, grads = mfcg._chunk_mean(nets.critic_loss_and_grad, [(p, x[m], y[m]) for m in range(4)])
    loss_all, grads_all = nets.critic_loss_and_grad(p, x.reshape(-1, 2), y.reshape(-1))
    assert loss == pytest.approx(float(loss_all), rel=1e-12)
    for k in grads_all:
        np.testing.assert_allclose(grads[k], grads_all[k], rtol=1e-11, atol=1e-14)


def test_threads_do_not_change_results(monkeypatch):
    """A B step with the pieces on two threads equals the same step run sequentially."""
    if al.get_xp() is not np:
        pytest.skip("NumPy only: the two threads are NumPy's fast path, never used on CuPy")
    cfg = mfcg.preset("quick", "b", batch=2048, n_samples=1000, steps=3)
    results = []
    for min_work in (0, 10 ** 12):  # always threads / never threads
        monkeypatch.setattr(mfcg, "PARALLEL_MIN_WORK", min_work)
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
    for name, source in al.CUDA_SOURCES.items():
        for ctype in ("float", "double"):
            out.append((f"{name}-{ctype}", f"#define T {ctype}\n" + source))
    for ctype, d, h in (("float", 1, 128), ("double", 3, 40)):  # H not a multiple of 32 too
        out.append((f"langevin_warp-{ctype}-d{d}-H{h}",
                    f"#define T {ctype}\n#define D {d}\n#define H {h}\n" + mfcg.LANGEVIN_CUDA))
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
    p = subprocess.run([nvcc, "-ptx", "-arch=sm_90", *al.CUDA_OPTIONS, "-o", str(ptx), str(src)],
                       capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    text = ptx.read_text()
    assert f".entry {name.split('-')[0]}(" in text
    if name.startswith("langevin"):
        d = int(re.search(r"-d(\d+)-", name).group(1))
        words = 2 if "double" in name else 1  # a double is shuffled as two 32-bit words
        assert ".local" not in text and text.count("shfl.sync") == 5 * d * words  # 5 per coordinate
