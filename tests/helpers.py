"""Shared test helpers: the tolerances (named once, here) and gradient comparison."""
import numpy as np

# Float64 central differences with h = 1e-6 have truncation error ~h² and round-off
# ~1e-16/h ≈ 1e-10 relative to the loss scale; analytic and numerical gradients must agree
# to GRAD_RTOL of the largest numerical entry, plus GRAD_ATOL for all-zero gradients.
FD_STEP = 1e-6
GRAD_RTOL = 1e-6
GRAD_ATOL = 1e-9


def assert_grads_match(analytic, numerical):
    """Every parameter's analytic gradient equals the numerical one within the tolerances."""
    assert set(analytic) == set(numerical), (sorted(analytic), sorted(numerical))
    for k in numerical:
        ga, gn = np.asarray(analytic[k], dtype=np.float64), numerical[k]
        assert ga.shape == gn.shape, f"{k}: shape {ga.shape} != {gn.shape}"
        err = np.max(np.abs(ga - gn))
        bound = GRAD_ATOL + GRAD_RTOL * np.max(np.abs(gn))
        assert err <= bound, f"{k}: max |analytic - numerical| = {err:.3e} > {bound:.3e}"
