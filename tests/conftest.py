"""Hypothesis profiles: CI draws the same examples every run (derandomize), so a red run
is reproducible; locally examples are random. No example has a deadline: the first call
of a test pays for imports. Tests that set their own max_examples keep it. Also the
steady preset's runs, retrained once and shared."""
import os

import pytest
from hypothesis import settings

settings.register_profile("dev", deadline=None, max_examples=30)
settings.register_profile("ci", deadline=None, max_examples=30, derandomize=True)
# a deeper search, by hand: pytest --hypothesis-profile=thorough
settings.register_profile("thorough", deadline=None, max_examples=300)
settings.load_profile("ci" if os.environ.get("CI") else "dev")


@pytest.fixture(scope="session")
def steady_run():
    """steady_run(name, until) → (state, saved settings, committed history): the run
    docs/results/steady/runs.zip/steady/NAME.npz retrained from its saved config up to step
    `until`, once per session (the tests of the steady preset and of the correction share
    them)."""
    import mfcg
    import rundir
    root = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                        "docs", "results", "steady", "runs.zip", "steady")
    cache = {}

    def get(name, until):
        if (name, until) not in cache:
            saved, _, history, _ = rundir.unpack_run(os.path.join(root, f"{name}.npz"))
            state = mfcg.train(mfcg.Config(**saved["config"]), until=until)
            cache[(name, until)] = (state, saved, history)
        return cache[(name, until)]
    return get
