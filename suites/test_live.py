"""Group 8 — live providers: the claims that need no injected fault, against the real thing.

Only with `--live`, and only for providers whose key is set (KIMI_API_KEY, NVIDIA_API_KEY,
MISTRAL_API_KEY; base URLs and models from the seed, overridable as KIMI_BASE_URL,
KIMI_MODEL, ...). Each case runs directly against the provider and through the bundled
reference proxy, with one short message and a small max_tokens. Without `--live` every
case here is skipped, with the reason, and nothing leaves 127.0.0.1.
"""

from __future__ import annotations

import pytest

from streamproof.harness import Judge, Strength, case, checks
from streamproof.harness.live import ROUTES, LiveRoute

OPENAI = "OpenAI chat completions streaming contract"
ON_EVERY_ROUTE = pytest.mark.parametrize("live_route", ROUTES, indirect=True)


@case(
    "8.1",
    "A live stream is an event stream of JSON chunks that ends with one [DONE]",
    requirement="A streamed chat completion is sent as data-only server-sent events of "
    "chat.completion.chunk objects, terminated by a data: [DONE] message.",
    source=OPENAI,
    expected="status 200, text/event-stream, JSON object payloads, some content, one [DONE] last",
)
@ON_EVERY_ROUTE
def test_live_stream(live_route: LiveRoute, judge: Judge) -> None:
    t = live_route.chat()
    judge.attach("client saw", t.summary())
    judge.check(
        checks.status_is(t, 200),
        checks.is_event_stream(t),
        checks.payloads_are_json_objects(t),
        checks.has_content(t),
        checks.ends_with_single_done(t),
    )


@case(
    "8.2",
    "A live stream asked for usage ends with one usage chunk",
    requirement="With stream_options.include_usage, an additional chunk is streamed before "
    "data: [DONE], with an empty choices array and the usage of the whole request.",
    source=OPENAI,
    expected="one final usage chunk (choices: []) right before [DONE]",
    strength=Strength.SHOULD,  # some providers reject stream_options; a proxy covers for them
)
@ON_EVERY_ROUTE
def test_live_usage(live_route: LiveRoute, judge: Judge) -> None:
    t = live_route.chat(stream_options={"include_usage": True})
    judge.attach("client saw", t.summary())
    judge.check(checks.status_is(t, 200), checks.usage_in_openai_shape(t))


@case(
    "8.3",
    "A live answer not streamed is one JSON chat completion with content",
    requirement="Without stream, the answer is one chat.completion object whose message "
    "carries the content.",
    source=OPENAI,
    expected="status 200, application/json, a message with some content",
)
@ON_EVERY_ROUTE
def test_live_whole_answer(live_route: LiveRoute, judge: Judge) -> None:
    t = live_route.chat(stream=False)
    judge.attach("client saw", t.summary())
    judge.check(
        checks.status_is(t, 200),
        checks.content_type_is(t, "application/json"),
        checks.has_content(t),
    )
