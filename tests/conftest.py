"""Hypothesis profiles: CI draws the same examples every run (derandomize), so a red run
is reproducible; locally examples are random. No example has a deadline: the first call
of a test pays for imports. Tests that set their own max_examples keep it. Also the
shared quick-preset M runs."""
import os

import pytest
from hypothesis import settings

settings.register_profile("dev", deadline=None, max_examples=30)
settings.register_profile("ci", deadline=None, max_examples=30, derandomize=True)
# a deeper search, by hand: pytest --hypothesis-profile=thorough
settings.register_profile("thorough", deadline=None, max_examples=300)
settings.load_profile("ci" if os.environ.get("CI") else "dev")


@pytest.fixture(scope="session")
def quick_m_runs():
    """Quick-preset M, seed 0, without and with the mean-field correction ({False: state,
    True: state}); about 50 s each, trained once and shared by the tests that read them."""
    import mfcg
    return {mf: mfcg.train(mfcg.preset("quick", "m", seed=0, mf_correction=mf)) for mf in (False, True)}
