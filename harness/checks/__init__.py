"""Checks: each compares what the client saw (A) with what the upstream did (B).

A check returns a `Finding`, never raises and never looks inside the proxy: that is what
lets one case run against any proxy. The words in `observed` are what a reader of the
report sees, so they say what happened, with numbers.
"""

from __future__ import annotations

from harness.checks.answers import (
    answer_intact,
    content_intact,
    fault_visible,
    finish_reasons_are,
    message_content_intact,
    not_dressed_up,
    nothing_replayed,
    openai_error_event,
    role_announced,
    same_event_sequence,
    single_error_event,
)
from harness.checks.framing import (
    charset_is_utf8,
    chunk_objects,
    content_type_is,
    delivered_incrementally,
    ends_on_event_boundary,
    ends_with_single_done,
    event_write_times,
    header_absent,
    header_is,
    is_event_stream,
    metadata_preserved,
    no_content_encoding,
    paced_like_upstream,
    payloads_are_json_objects,
    status_is,
)
from harness.checks.recovery import (
    attempts_at_least,
    attempts_exactly,
    ended_within,
    http_error,
    retried_after,
    upstream_released,
)
from harness.checks.usage import (
    USAGE_FIELDS,
    no_usage,
    same_usage,
    usage_estimate_close,
    usage_in_openai_shape,
    usage_is,
)

__all__ = [
    "USAGE_FIELDS",
    "answer_intact",
    "attempts_at_least",
    "attempts_exactly",
    "charset_is_utf8",
    "chunk_objects",
    "content_intact",
    "content_type_is",
    "delivered_incrementally",
    "ended_within",
    "ends_on_event_boundary",
    "ends_with_single_done",
    "event_write_times",
    "fault_visible",
    "finish_reasons_are",
    "header_absent",
    "header_is",
    "http_error",
    "is_event_stream",
    "message_content_intact",
    "metadata_preserved",
    "no_content_encoding",
    "no_usage",
    "not_dressed_up",
    "nothing_replayed",
    "openai_error_event",
    "paced_like_upstream",
    "payloads_are_json_objects",
    "retried_after",
    "role_announced",
    "same_event_sequence",
    "same_usage",
    "single_error_event",
    "status_is",
    "upstream_released",
    "usage_estimate_close",
    "usage_in_openai_shape",
    "usage_is",
]
