"""`--live`: the real providers, directly and through the bundled proxy.

Only with `--live`, and only for a provider whose key is in the environment, do requests
leave 127.0.0.1. Base URLs and models are the seed's, each overridable (so that CI can
point the live code path at a local stand-in):

    KIMI_API_KEY     KIMI_BASE_URL     (https://api.kimi.com/coding/v1)       KIMI_MODEL
    NVIDIA_API_KEY   NVIDIA_BASE_URL   (https://integrate.api.nvidia.com/v1)  NVIDIA_MODEL
    MISTRAL_API_KEY  MISTRAL_BASE_URL  (https://api.mistral.ai/v1)            MISTRAL_MODEL

Payloads are minimal: one short user message and a small `max_tokens`.

Proxies of the environment (HTTPS_PROXY, ALL_PROXY, NO_PROXY): live traffic is the one
place where they are honoured, because it goes to the real providers, and a user behind a
corporate HTTPS proxy expects `--live` to reach them through it. So the `direct` route's
client may trust the environment, and the target started for `--live` inherits it for its
own upstream. Loopback never goes through them: the `proxy` route talks to that target on
127.0.0.1 and must not trust the environment (as every other client of the harness), and
the target is given NO_PROXY with the loopback names (`harness.targets`).
"""

from __future__ import annotations

import textwrap
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from streamproof.harness.client import StreamClient
from streamproof.harness.targets import Timeouts
from streamproof.harness.transcript import Transcript

MAX_TOKENS = 16
TIMEOUTS = Timeouts(connect=10.0, first_byte=60.0, idle=60.0, total=120.0)
PROMPT = "Reply with the single word: ok"


@dataclass(frozen=True)
class LiveProvider:
    name: str
    key_variable: str
    base_url: str
    model: str
    stream_options: bool  # whether it accepts `stream_options` (Mistral and NIM have not)
    key: str | None

    @property
    def skip_reason(self) -> str | None:
        return None if self.key else f"{self.key_variable} is not set"


# name: (key variable, base URL, model, accepts stream_options) — as in the seed.
DEFAULTS = {
    "kimi": ("KIMI_API_KEY", "https://api.kimi.com/coding/v1", "kimi-for-coding", True),
    "nvidia": (
        "NVIDIA_API_KEY",
        "https://integrate.api.nvidia.com/v1",
        "nvidia/kimi-k2.5",
        False,
    ),
    "mistral": ("MISTRAL_API_KEY", "https://api.mistral.ai/v1", "mistral-large-latest", False),
}
ROUTES = [f"{name}-{via}" for name in DEFAULTS for via in ("direct", "proxy")]


def providers(environ: Mapping[str, str]) -> dict[str, LiveProvider]:
    found = {}
    for name, (variable, base_url, model, stream_options) in DEFAULTS.items():
        prefix = name.upper()
        found[name] = LiveProvider(
            name,
            variable,
            environ.get(f"{prefix}_BASE_URL", base_url).rstrip("/"),
            environ.get(f"{prefix}_MODEL", model),
            stream_options,
            environ.get(variable, "").strip() or None,
        )
    return found


def request(model: str, *, stream: bool, **extra: Any) -> dict[str, Any]:
    return {
        "model": model,
        "messages": [{"role": "user", "content": PROMPT}],
        "max_tokens": MAX_TOKENS,
        "stream": stream,
        **extra,
    }


def proxy_config(live: Iterable[LiveProvider], log: Path) -> str:
    """A reference-proxy config for the providers that have keys: one route per model."""
    parts = [
        textwrap.dedent(
            f"""\
            # Written by streamproof for a --live run: the real providers, one route each.
            [logging]
            file = "{log}"

            [timeouts]
            connect = {TIMEOUTS.connect}
            first_byte = {TIMEOUTS.first_byte}
            idle = {TIMEOUTS.idle}
            total = {TIMEOUTS.total}
            """
        )
    ]
    for provider in live:
        parts.append(
            textwrap.dedent(
                f"""
                [providers.{provider.name}]
                base_url = "{provider.base_url}"
                api_key_env = "{provider.key_variable}"
                stream_options = {str(provider.stream_options).lower()}

                [[routes]]
                model = "{provider.model}"
                providers = ["{provider.name}"]
                """
            )
        )
    return "".join(parts)


@dataclass
class LiveRoute:
    """One provider, reached directly or through the bundled proxy."""

    provider: LiveProvider
    via: str  # "direct" or "proxy"
    client: StreamClient
    path: str  # where chat completions are posted, under the client's base URL

    def chat(self, *, stream: bool = True, **extra: Any) -> Transcript:
        body = request(self.provider.model, stream=stream, **extra)
        return self.client.send("POST", self.path, json=body)
