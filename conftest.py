"""Project-wide test settings: streamproof's plugin, and Hypothesis profiles."""

from __future__ import annotations

import os

from hypothesis import settings

# Loaded here, not through an entry point: a pytest session elsewhere never sees it.
pytest_plugins = ["streamproof.harness.plugin"]

settings.register_profile("dev", max_examples=100, deadline=None)
settings.register_profile("ci", max_examples=300, deadline=None, derandomize=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci" if os.environ.get("CI") else "dev"))
