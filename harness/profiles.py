"""Target profiles: how to start (or reach) a proxy, in a TOML file, chosen with `--target`.

A profile says everything the harness must know about a target, so that a run against it
is one word on the command line:

    [targets.litellm]
    description = "LiteLLM's proxy, one wildcard route to the fake provider"
    command = "{root}/.litellm/bin/litellm --config {workdir}/litellm.yaml --port {port}"
    environment = { LITELLM_LOG = "ERROR" }
    readiness = "/health/liveliness"     # GET until it answers; "" or "tcp" to connect only
    headers = { Authorization = "Bearer sk-local" }   # the proxy's own auth, if any
    timeouts = { idle = 600, first_byte = 600, total = 600 }
    offers = []                          # see harness.targets.OFFERS; ["all"] for all
    files = { "litellm.yaml" = "..." }   # written into {workdir} before the start

or, for a proxy that is already running (wired by its user to a fake provider on a port):

    [targets.mine]
    url = "http://127.0.0.1:4000"
    upstream_port = 9999

Every string of `command`, `environment`, `files` and `headers` may use the placeholders
of `harness.targets` ({python} {upstream} {fd} {port} {api_key} {config}) and {workdir}
(the target's own folder for the run) and {root} (this repository), filled when the
target is started: a gateway that picks its upstream from a request header gets
`{ "x-portkey-custom-host" = "{upstream}" }`. Every key is checked: an unknown one, a
wrong type or a bad value is a `ProfileError` that names it and says what is accepted.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from streamproof.harness.targets import (
    BUNDLED,
    REFERENCE_TIMEOUTS,
    UNDECLARED,
    Offers,
    Timeouts,
    parse_readiness,
)

DEFAULT_FILE = "targets.toml"
KEYS = (
    "description",
    "command",
    "url",
    "upstream_port",
    "environment",
    "readiness",
    "headers",
    "timeouts",
    "offers",
    "files",
)


class ProfileError(ValueError):
    """A profile file or entry that cannot be used; the message names the key."""


@dataclass(frozen=True)
class Profile:
    name: str
    description: str = ""
    command: str | None = None  # a command template, or None for a running proxy at `url`
    url: str | None = None
    upstream_port: int | None = None  # where the fake must listen for a running proxy
    environment: Mapping[str, str] = field(default_factory=dict)
    readiness: str = "/health"
    headers: Mapping[str, str] = field(default_factory=dict)
    timeouts: Timeouts | None = None  # None: the harness's own (bundled) or undeclared
    offers: Offers = field(default_factory=Offers)
    files: Mapping[str, str] = field(default_factory=dict)

    def __str__(self) -> str:
        what = f"command {self.command!r}" if self.command else f"the proxy at {self.url}"
        return f"{self.name} ({self.description or what})"


REFERENCE = Profile(
    "reference",
    description="streamproof's bundled reference proxy",
    command=BUNDLED,
    offers=Offers.everything(),
)


def load_profiles(path: Path) -> dict[str, Profile]:
    """The profiles of a TOML file; the bundled `reference` is always there too."""
    try:
        with path.open("rb") as file:
            raw = tomllib.load(file)
    except OSError as exc:
        raise ProfileError(f"{path}: cannot read it: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ProfileError(f"{path}: not valid TOML: {exc}") from None
    unknown = set(raw) - {"targets"}
    if unknown:
        raise ProfileError(f"{path}: unknown table {sorted(unknown)[0]!r} (accepted: targets)")
    targets = raw.get("targets", {})
    if not isinstance(targets, dict):
        raise ProfileError(f"{path}: targets must be a table of [targets.NAME] tables")
    profiles = {"reference": REFERENCE}
    for name, table in targets.items():
        profiles[name] = parse_profile(name, table)
    return profiles


def parse_profile(name: str, table: Any) -> Profile:
    where = f"targets.{name}"
    if not isinstance(table, dict):
        raise ProfileError(f"{where}: must be a table")
    for key in table:
        if key not in KEYS:
            raise ProfileError(f"{where}.{key}: unknown key (accepted: {', '.join(KEYS)})")
    command, url = table.get("command"), table.get("url")
    if (command is None) == (url is None):
        raise ProfileError(f"{where}: give either command (a template) or url (a running proxy)")
    port = table.get("upstream_port")
    if url is not None:
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise ProfileError(f"{where}.url: must be an http:// or https:// URL, got {url!r}")
        if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
            raise ProfileError(f"{where}.upstream_port: a running proxy needs the port (1-65535)")
    elif port is not None:
        raise ProfileError(
            f"{where}.upstream_port: only with url (a started proxy is given {{upstream}})"
        )
    try:
        offers = Offers.parse(",".join(_strings(table, where, "offers", list)))
        timeouts = table.get("timeouts")
        if timeouts is not None:
            spec = _strings(table, where, "timeouts", dict, values=(int, float, str))
            timeouts = Timeouts.parse(",".join(f"{k}={v}" for k, v in spec.items()))
    except ValueError as exc:
        raise ProfileError(f"{where}: {exc}") from None
    try:
        readiness = parse_readiness(_text(table, where, "readiness", "/health"))
    except ProfileError:
        raise
    except ValueError as exc:
        raise ProfileError(f"{where}.readiness: {exc}") from None
    return Profile(
        name=name,
        description=_text(table, where, "description", ""),
        command=_text(table, where, "command", None) if command is not None else None,
        url=url.rstrip("/") if isinstance(url, str) else None,
        upstream_port=port,
        environment=_strings(table, where, "environment", dict),
        readiness=readiness,
        headers=_strings(table, where, "headers", dict),
        timeouts=timeouts,
        offers=offers,
        files=_strings(table, where, "files", dict),
    )


def _text(table: Mapping[str, Any], where: str, key: str, default: str | None) -> Any:
    value = table.get(key, default)
    if value is not None and not isinstance(value, str):
        raise ProfileError(f"{where}.{key}: must be a string, got {value!r}")
    return value


def _strings(
    table: Mapping[str, Any],
    where: str,
    key: str,
    kind: type[list[Any]] | type[dict[str, Any]],
    values: tuple[type, ...] = (str,),
) -> Any:
    """A list of strings or a table of strings (or of `values`), checked."""
    value = table.get(key, kind())
    items = value.values() if isinstance(value, dict) else value
    if not isinstance(value, kind) or not all(
        isinstance(item, values) and not isinstance(item, bool) for item in items
    ):
        shape = (
            "an array of strings"
            if kind is list
            else "a table of " + ("strings" if values == (str,) else 'seconds or "none"')
        )
        raise ProfileError(f"{where}.{key}: must be {shape}, got {value!r}")
    return value


def choose(
    name: str | None,
    command: str | None,
    *,
    offers: str | None = None,
    timeouts: str | None = None,
    path: Path | None = None,
) -> Profile:
    """The started target a command line names, outside pytest (the soak): a profile of
    `path` (`--target NAME`), a command template (`--target-cmd`), or the bundled proxy;
    with `--target-offers` and `--target-timeouts` applied and its timers settled as the
    plugin settles them. A ProfileError names what is wrong and what is accepted."""
    if name is not None and command is not None:
        raise ProfileError("choose one target: --target or --target-cmd, not both")
    if command is not None:
        profile = Profile(command, command=command)
    elif name is None:
        profile = REFERENCE
    else:
        file = path or Path(DEFAULT_FILE)
        profiles = load_profiles(file) if file.exists() else {"reference": REFERENCE}
        if name not in profiles:
            known = ", ".join(sorted(profiles))
            raise ProfileError(f"--target: no profile {name!r} in {file} (known: {known})")
        profile = profiles[name]
        if profile.command is None:
            raise ProfileError(
                f"--target {name}: it is a running proxy (url); only a target started from a "
                "command can be watched"
            )
    try:
        chosen = Offers.parse(offers) if offers is not None else profile.offers
        timers = Timeouts.parse(timeouts) if timeouts is not None else None
    except ValueError as exc:
        which = "--target-offers" if "offer" in str(exc) else "--target-timeouts"
        raise ProfileError(f"{which}: {exc}") from None
    return replace(profile, offers=chosen, timeouts=timers or settled_timeouts(profile, chosen))


def settled_timeouts(profile: Profile, offers: Offers) -> Timeouts:
    """A target's timers when none are given on the command line: its profile's; for the
    bundled proxy or a target that runs on the harness's {config}, that config's; else
    undeclared (judged by bounds)."""
    own = profile.command == BUNDLED or "config" in offers
    return profile.timeouts or (REFERENCE_TIMEOUTS if own else UNDECLARED)
