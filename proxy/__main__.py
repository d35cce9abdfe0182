"""`python -m streamproof.proxy --config config.toml [--host H] [--port P] [--fd N]`.

It serves the reference proxy with uvicorn.

Logging goes to stderr and to `logging.file` (default `logs/proxy.log`), one line per
request outcome and per failed attempt (see `proxy.logs`). The lines are built by the proxy
from provider names and redacted upstream text; no request headers are logged, and every
line passes a filter that redacts the keys in use.

It runs on uvloop with uvicorn's httptools parser: both cost the streaming hot path less
than asyncio's own loop and h11 (see `make bench`).
"""

from __future__ import annotations

import argparse
import os
import socket
import sys
from collections.abc import Sequence

import uvicorn

from streamproof.proxy import logs
from streamproof.proxy.app import create_app
from streamproof.proxy.auth import proxy_key
from streamproof.proxy.config import load_config
from streamproof.proxy.errors import ConfigError
from streamproof.proxy.feed import websocket_protocol

# Long enough for open streams to end on their own timers, short enough not to hang a run.
GRACEFUL_SHUTDOWN_SECONDS = 5
# The feed's clients send pings and keys: a bigger message is closed with 1009.
WS_MAX_MESSAGE_BYTES = 64 * 1024


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        print(f"proxy: {exc}", file=sys.stderr)
        return 2
    try:
        app = create_app(config)
    except ConfigError as exc:
        print(f"proxy: {exc}", file=sys.stderr)
        return 2
    secrets = [os.environ.get(p.api_key_env, "").strip() for p in config.providers.values()]
    secrets.append(proxy_key(config.server))
    try:
        logs.configure(config.logging, secrets)
    except OSError as exc:
        print(
            f"proxy: config: logging.file: cannot open {config.logging.file!r}: {exc}",
            file=sys.stderr,
        )
        return 2
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            host=args.host or config.server.host,
            port=config.server.port if args.port is None else args.port,
            log_config=None,  # use the logging set up above
            access_log=False,  # the proxy logs its own line per request
            # The proxy never reads a client's address: no X-Forwarded-For rewriting of it
            # (one middleware less on every request).
            proxy_headers=False,
            lifespan="on",
            timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS,
            loop="uvloop",
            http="httptools",
            ws=websocket_protocol(config.feed.send_buffer),
            ws_max_size=WS_MAX_MESSAGE_BYTES,
        )
    )
    if args.fd is None:
        server.run()
    else:
        # uvicorn's own `fd=` rebuilds the socket as AF_UNIX with protocol 0, so asyncio does
        # not set TCP_NODELAY on accepted connections and small SSE writes can wait on Nagle.
        # A socket built from the descriptor alone detects its real family and protocol.
        server.run(sockets=[socket.socket(fileno=args.fd)])
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m streamproof.proxy", description="streamproof's reference streaming proxy"
    )
    parser.add_argument("--config", default="config.toml", help="TOML config file")
    parser.add_argument("--host", default=None, help="address to listen on (config: 127.0.0.1)")
    parser.add_argument("--port", type=int, default=None, help="port to listen on (config: 8000)")
    parser.add_argument(
        "--fd", type=int, default=None, help="serve on this already-listening socket descriptor"
    )
    return parser


if __name__ == "__main__":
    sys.exit(main())
