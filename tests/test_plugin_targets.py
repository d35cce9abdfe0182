"""Choosing the target: profiles in TOML, a command template, a proxy already running."""

from __future__ import annotations

import json
import os
import secrets
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from streamproof.harness.profiles import ProfileError, load_profiles, parse_profile
from streamproof.harness.targets import (
    Offers,
    ProcessTarget,
    TargetError,
    Timeouts,
    fill,
    placeholders,
)

ROOT = Path(__file__).resolve().parent.parent
SUITES = ROOT / "suites"
LEAN = ("-p", "no:html", "-p", "no:xdist", "-p", "no:hypothesispytest")


def test_profiles_file_is_read_and_checked(tmp_path: Path) -> None:
    path = tmp_path / "targets.toml"
    path.write_text(
        textwrap.dedent(
            """
            [targets.mine]
            description = "my proxy"
            command = "{python} my.py --port {port} --upstream {upstream}"
            environment = { MY_KEY = "{api_key}" }
            readiness = "/ready"
            headers = { Authorization = "Bearer local" }
            timeouts = { idle = 30, total = 600 }
            offers = ["api-chat", "health"]
            files = { "my.yaml" = "upstream: {upstream}" }

            [targets.running]
            url = "http://127.0.0.1:4000/"
            upstream_port = 9999
            """
        )
    )
    profiles = load_profiles(path)
    assert set(profiles) == {"reference", "mine", "running"}
    mine = profiles["mine"]
    assert mine.timeouts == Timeouts(idle=30.0, total=600.0)
    assert mine.offers == Offers(frozenset({"api-chat", "health"}))
    assert mine.headers == {"Authorization": "Bearer local"}
    assert (profiles["running"].url, profiles["running"].upstream_port) == (
        "http://127.0.0.1:4000",
        9999,
    )


@pytest.mark.parametrize(
    ("table", "words"),
    [
        ({"command": "x", "comand": "y"}, "targets.t.comand: unknown key (accepted: description"),
        ({}, "either command (a template) or url"),
        ({"command": "x", "url": "http://a"}, "either command"),
        ({"url": "ftp://a", "upstream_port": 1}, "targets.t.url: must be an http://"),
        ({"url": "http://a"}, "targets.t.upstream_port: a running proxy needs the port"),
        ({"command": "x", "upstream_port": 9}, "only with url"),
        ({"command": "x", "offers": ["websocket"]}, "unknown offer 'websocket'"),
        (
            {"command": "x", "timeouts": {"idle": "slow"}},
            "targets.t: idle takes a number of seconds or 'none'",
        ),
        ({"command": "x", "timeouts": {"stall": 1}}, "unknown timeout 'stall'"),
        ({"command": "x", "headers": {"A": 1}}, "targets.t.headers: must be a table of strings"),
        ({"command": 3}, "targets.t.command: must be a string"),
    ],
)
def test_profile_errors_name_the_key(table: dict[str, object], words: str) -> None:
    with pytest.raises(ProfileError, match=None) as info:
        parse_profile("t", table)
    assert words in str(info.value)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--target", "nope"], "*--target: no profile 'nope'*(known: reference)*"),
        (["--target", "reference", "--target-cmd", "x"], "*choose one target*"),
        (["--target-url", "http://127.0.0.1:1"], "*--target-url and --upstream-port go together*"),
        (["--target-url", "nowhere", "--upstream-port", "9"], "*--target-url: *http://*"),
        (["--target-header", "Bearer x"], "*--target-header takes 'Name: value'*"),
        (
            [
                *("--target-url", "http://127.0.0.1:1", "--upstream-port", "9"),
                *("--target-header", "Authorization: Bearer {api_key}"),
            ],
            "*header Authorization: {api_key} has a value only in a target the harness starts*",
        ),
    ],
)
def test_bad_target_options_are_usage_errors(
    pytester: pytest.Pytester, args: list[str], message: str
) -> None:
    pytester.makepyfile(test_x="def test_x(): pass")
    result = pytester.runpytest(*args, "-p", "no:asyncio")  # no ini here: no loop scope
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([message])


def _verdicts(pytester: pytest.Pytester, *args: str) -> dict[str, str]:
    out = pytester.path / "verdicts.json"
    result = pytester.runpytest_subprocess(str(SUITES), "--verdicts-json", str(out), *LEAN, *args)
    assert out.exists(), result.stdout.str()
    return {v["case"]: v["level"] for v in json.loads(out.read_text())}


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_target_url_runs_against_a_proxy_already_running(
    pytester: pytest.Pytester, tmp_path: Path
) -> None:
    upstream_port = _free_port()  # where the run's fake provider will listen
    config = tmp_path / "proxy.toml"
    config.write_text(
        textwrap.dedent(
            f"""
            [logging]
            file = "{tmp_path / "proxy.log"}"
            [timeouts]
            first_byte = 0.5
            idle = 0.3
            total = 5.0
            [providers.fake]
            base_url = "http://127.0.0.1:{upstream_port}/v1"
            api_key_env = "STREAMPROOF_UPSTREAM_KEY"
            [[routes]]
            model = "*"
            providers = ["fake"]
            """
        )
    )
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]
        proxy = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "proxy",
                "--config",
                str(config),
                "--fd",
                str(listener.fileno()),
            ],
            env={**os.environ, "STREAMPROOF_UPSTREAM_KEY": "sk-running"},
            pass_fds=[listener.fileno()],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            cwd=ROOT,
        )
    try:
        verdicts = _verdicts(
            pytester,
            "--target-url",
            f"http://127.0.0.1:{port}",
            "--upstream-port",
            str(upstream_port),
            "--target-timeouts",
            "first_byte=0.5,idle=0.3,total=5",
            "--case",
            "1.1",
            "--case",
            "2.1[chop-1]",
            "--case",
            "5.5",
            "--case",
            "5.26",
        )
    finally:
        proxy.terminate()
        proxy.wait(timeout=10)
    assert verdicts == {"1.1": "PASS", "2.1[chop-1]": "PASS", "5.5": "PASS", "5.26": "SKIP"}


def test_target_profile_with_a_port_is_polled_until_ready(pytester: pytest.Pytester) -> None:
    pytester.makefile(
        ".toml",
        targets=textwrap.dedent(
            """
            [targets.own-port]
            description = "the reference proxy binding its own port"
            command = "{python} -m streamproof.proxy --config {config} --port {port}"
            offers = ["config", "health"]
            """
        ),
    )
    verdicts = _verdicts(
        pytester,
        "--targets-file",
        str(pytester.path / "targets.toml"),
        "--target",
        "own-port",
        "--case",
        "1.1",
        "--case",
        "5.28[reset]",
    )
    assert verdicts == {"1.1": "PASS", "5.28[reset]": "PASS"}
    logs = list((pytester.path / "reports" / "targets" / "own-port" / "logs").glob("target*.log"))
    assert logs, "the target's output is kept with the report"
    assert "Application startup complete" in logs[0].read_text()


def test_placeholders_are_named_and_filled() -> None:
    text = "Bearer {api_key} via {upstream}, not {model}"
    assert placeholders(text) == {"api_key", "upstream"}
    filled = fill(text, {"api_key": "sk-1", "upstream": "http://127.0.0.1:9/v1"})
    assert filled == "Bearer sk-1 via http://127.0.0.1:9/v1, not {model}"


def test_target_fill_needs_a_started_target(tmp_path: Path) -> None:
    target = ProcessTarget(
        "{python} -m streamproof.proxy --port {port}", "http://127.0.0.1:9/v1", tmp_path
    )
    with pytest.raises(TargetError, match="not started"):
        target.fill("Bearer {api_key}")


# The reference proxy made to want the upstream key as its own key: a request reaches the
# fake only if the header's {api_key} was filled with this run's key.
OWN_KEY_CONFIG = """
[logging]
file = "{workdir}/own.log"
[server]
api_key_env = "STREAMPROOF_UPSTREAM_KEY"
[providers.fake]
base_url = "{upstream}"
api_key_env = "STREAMPROOF_UPSTREAM_KEY"
[[routes]]
model = "*"
providers = ["fake"]
"""


@pytest.mark.parametrize("where", ["profile", "option"])
def test_header_placeholders_are_filled_when_the_target_starts(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, where: str
) -> None:
    canary = f"sk-canary-header-{secrets.token_hex(8)}"
    monkeypatch.setenv("STREAMPROOF_UPSTREAM_KEY", canary)
    headers = 'headers = { Authorization = "Bearer {api_key}" }' if where == "profile" else ""
    pytester.makefile(
        ".toml",
        targets=textwrap.dedent(
            f"""
            [targets.keyed]
            command = '''{{python}} -m streamproof.proxy
                --config {{workdir}}/own.toml --port {{port}}'''
            {headers}
            [targets.keyed.files]
            "own.toml" = '''{OWN_KEY_CONFIG}'''
            """
        ),
    )
    option = ["--target-header", "Authorization: Bearer {api_key}"] if where == "option" else []
    verdicts = _verdicts(
        pytester,
        "--targets-file",
        str(pytester.path / "targets.toml"),
        "--target",
        "keyed",
        *option,
        "--case",
        "1.1",
    )
    assert verdicts == {"1.1": "PASS"}
    for path in pytester.path.rglob("*"):
        if path.is_file():
            assert canary.encode() not in path.read_bytes(), f"the key is in {path}"
