"""Checks of token usage: exact forwarding, the include_usage shape, estimates."""

from __future__ import annotations

from typing import Any

from streamproof.harness import tokens
from streamproof.harness.sut import Exchange
from streamproof.harness.transcript import Transcript
from streamproof.harness.verdict import Finding

USAGE_FIELDS = ("prompt_tokens", "completion_tokens", "total_tokens")


def _figures(usage: dict[str, Any] | None) -> dict[str, Any] | None:
    return None if usage is None else {key: usage.get(key) for key in USAGE_FIELDS}


def usage_is(t: Transcript, want: dict[str, int], what: str = "usage as reported") -> Finding:
    """The last usage the client saw carries exactly these figures (wherever it sat)."""
    seen = t.usages()
    last = _figures(seen[-1][1]) if seen else None
    observed = f"last usage {last} (upstream {want})" if seen else "no usage reached the client"
    return Finding(last == _figures(want), what, observed)


def reasoning_tokens_are(t: Transcript, want: int) -> Finding:
    """The last usage the client saw says how many of its completion tokens were reasoning
    (`completion_tokens_details.reasoning_tokens`), as the provider reported it."""
    seen = t.usages()
    details = seen[-1][1].get("completion_tokens_details") if seen else None
    got = details.get("reasoning_tokens") if isinstance(details, dict) else None
    observed = (
        f"reasoning_tokens {got} (upstream {want})" if seen else "no usage reached the client"
    )
    return Finding(got == want, "reasoning tokens as reported", observed)


def usage_in_openai_shape(t: Transcript) -> Finding:
    """One usage chunk with `choices: []`, right before [DONE]; no usage on other chunks."""
    seen = t.usages()
    datas = [timed.event.data for timed in t.events]
    finals = [
        i
        for i, (timed, p) in enumerate(t.payloads)
        if isinstance(p, dict) and p.get("choices") == [] and isinstance(p.get("usage"), dict)
    ]
    before_done = bool(finals) and len(datas) > finals[-1] + 1 and datas[finals[-1] + 1] == "[DONE]"
    ok = [where for where, _ in seen] == ["final"] and before_done
    observed = f"usage seen as {[where for where, _ in seen] or 'nothing'}" + (
        "" if before_done or not finals else ", not right before [DONE]"
    )
    return Finding(ok, "one final usage chunk (choices: []) before [DONE]", observed)


def same_usage(a: Transcript, b: Transcript) -> Finding:
    """Two exchanges ended with the same usage figures (or neither had any)."""
    ua, ub = a.usages(), b.usages()
    fa = _figures(ua[-1][1]) if ua else None
    fb = _figures(ub[-1][1]) if ub else None
    return Finding(fa == fb, "the same usage both ways", f"{fa} and {fb}")


def no_usage(t: Transcript) -> Finding:
    seen = t.usages()
    return Finding(
        not seen, "no usage (the client did not ask)", f"usage seen as {[w for w, _ in seen]}"
    )


def usage_estimate_close(x: Exchange) -> Finding:
    """An estimate: completion tokens exact on the joined text, prompt within tolerance."""
    seen = x.transcript.usages()
    if not seen:
        return Finding(False, "an estimated usage", "no usage reached the client")
    usage = seen[-1][1]
    want = x.expected
    completion = tokens.completion_tokens(
        [
            want.content[i] + "".join(a for _, _, a in want.tool_calls.get(i, ()))
            for i in want.content
        ]
    )
    prompt = tokens.prompt_tokens(x.transcript.request.get("messages", []))
    got_prompt, got_completion = usage.get("prompt_tokens"), usage.get("completion_tokens")
    ok = (
        got_completion == completion
        and isinstance(got_prompt, int)
        and tokens.prompt_close_enough(got_prompt, prompt)
        and usage.get("total_tokens") == (got_prompt or 0) + (got_completion or 0)
    )
    observed = (
        f"completion {got_completion} (oracle {completion}), prompt {got_prompt} "
        f"(oracle {prompt}, tolerance max({tokens.PROMPT_TOLERANCE_TOKENS}, "
        f"{tokens.PROMPT_TOLERANCE_SHARE:.0%})), total {usage.get('total_tokens')}"
    )
    return Finding(ok, "usage estimate matches the oracle", observed)


def partial_usage(record: dict[str, Any] | None, x: Exchange, *, exact: bool) -> Finding:
    """A failed or abandoned stream's recorded usage counts what was relayed, on the joined
    text: exactly the client's content when `exact`, else between what the client read and
    what the upstream wrote (a proxy may have relayed bytes the client never read)."""
    what = "partial usage recorded, counted on the joined text"
    if record is None:
        return Finding(False, what, "no record of this request in the health report")
    usage = record.get("usage") or {}
    got = usage.get("completion_tokens")
    low = tokens.count(x.transcript.content())
    high = low if exact else tokens.count(x.upstream_content)
    prompt = usage.get("prompt_tokens")
    oracle_prompt = tokens.prompt_tokens(x.transcript.request.get("messages", []))
    ok = (
        isinstance(got, int)
        and low <= got <= high
        and isinstance(prompt, int)
        and tokens.prompt_close_enough(prompt, oracle_prompt)
    )
    bounds = f"{low}" if exact else f"{low} to {high}"
    observed = (
        f"completion {got} (oracle {bounds}), prompt {prompt} (oracle {oracle_prompt}), "
        f"estimated {usage.get('estimated')}"
    )
    return Finding(ok, what, observed)
