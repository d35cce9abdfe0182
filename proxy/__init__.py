"""streamproof's bundled reference proxy: what a correct streaming OpenAI-compatible proxy does.

It retries and falls back only before the commit point (the first response body byte sent
to the client), reports every failure after it as one in-band error event without
`[DONE]`, keeps separate connect, first-byte, idle and total timers, and closes the upstream
as soon as the client goes away. See docs/design.md, "The commit point".

Modules, one idea each: `config` (the TOML file), `errors` (the exception tree, error
bodies), `sse` (the byte-level SSE framer), `relay` (what to send for an upstream stream),
`tokens` (the token counter), `usage` (reported usage, else a marked estimate),
`backoff` (waits between attempts), `providers` (keys and HTTP clients), `upstream` (one
attempt), `dispatch` (retry and fallback), `validation` (the client's request),
`responses` (the ASGI response and disconnect handling), `app` (Starlette), `__main__`.

It deliberately imports nothing from `harness` or `fake_providers`: it is checked by them,
so it must not share their code.
"""
