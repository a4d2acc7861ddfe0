"""Hypothesis driver of the graph generators (`workloads/random_graphs.py`,
`workloads/sparse_graphs.py`) and the test profiles of the property tests.

`HypothesisDraw` answers the generators' `Draw` questions from Hypothesis, so a failing case
shrinks to the simplest draws (smallest integers, first options, False flags). Profiles:
`ci` (the default: a fixed number of derandomized examples, no example database, so every run
checks the same cases) and `long` (set HYPOTHESIS_PROFILE=long: random, ten times as many).
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

settings.register_profile(
    "ci",
    derandomize=True,
    database=None,
    deadline=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.register_profile(
    "long",
    deadline=None,
    database=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
PROFILE = os.environ.get("HYPOTHESIS_PROFILE", "ci")
settings.load_profile(PROFILE)
SCALE = 10 if PROFILE == "long" else 1  # examples per test: CI count times SCALE


class HypothesisDraw:
    """`workloads.random_graphs.Draw` backed by a Hypothesis `data` object."""

    def __init__(self, data):
        self.data = data

    def int(self, lo: int, hi: int) -> int:
        return self.data.draw(st.integers(lo, hi))

    def pick(self, options):
        return self.data.draw(st.sampled_from(tuple(options)))

    def flag(self) -> bool:
        return self.data.draw(st.booleans())
