"""Hypothesis profiles: CI draws the same examples every run (derandomize), so a red run
is reproducible; locally examples are random. No example has a deadline: the first call
of a test pays for imports. Tests that set their own max_examples keep it."""
import os

from hypothesis import settings

settings.register_profile("dev", deadline=None, max_examples=30)
settings.register_profile("ci", deadline=None, max_examples=30, derandomize=True)
# a deeper search, by hand: pytest --hypothesis-profile=thorough
settings.register_profile("thorough", deadline=None, max_examples=300)
settings.load_profile("ci" if os.environ.get("CI") else "dev")
