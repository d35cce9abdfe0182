"""streamproof's own tests: they need no proxy but the ones they start themselves."""

from __future__ import annotations

import pytest

pytest_plugins = ("pytester",)


@pytest.fixture
def pytester(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    """pytester, whose runs load streamproof's plugin as a user's would (it has no entry
    point): through PYTEST_PLUGINS, in process and in a subprocess alike."""
    monkeypatch.setenv("PYTEST_PLUGINS", "streamproof.harness.plugin")
    return pytester
