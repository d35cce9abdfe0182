"""streamproof's own tests: they need no proxy but the ones they start themselves."""

from __future__ import annotations

pytest_plugins = ("pytester",)
