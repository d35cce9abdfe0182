"""The chaos soak (`bench/soak.py`): its schedules are reproducible, a short soak of the
bundled proxy passes, and a reference proxy with one bug is caught, the violation naming the
seed and the schedule that replays it (and the replay catching it again)."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from bench import soak
from streamproof.fake_providers.scenario import Scenario

BROKEN = "{python} tests/broken_reference.py --bug %s --config {config} --fd {fd}"
SMALL = ["--concurrency", "50", "--warmup", "10", "--seed", "7"]


def test_schedules_are_the_same_for_the_same_seed() -> None:
    first = [soak.schedule(7, i) for i in range(300)]
    assert first == [soak.schedule(7, i) for i in range(300)]
    assert soak.schedule(7, 123) == first[123]  # drawn per stream, whatever ran before
    other = [soak.schedule(8, i) for i in range(300)]
    differ = [a.scenario.faults != b.scenario.faults for a, b in zip(first, other, strict=True)]
    assert sum(differ) > 150
    for s in first:  # the fake reads back exactly the scenario that was drawn
        assert Scenario.parse(s.model) == s.scenario
        assert f"{s.seed}:{s.index}" in s.replay


def test_schedules_cover_the_vocabulary() -> None:
    drawn = [soak.schedule(7, i) for i in range(3000)]
    kinds = Counter(soak.fault_kind(f.token) for s in drawn for f in s.scenario.faults)
    wanted = {
        "reset_before_headers",
        "stall_before_headers",
        "status",
        "reset_after",
        "stall_after",
        "close_after",
        "cut_inside",
        "reset_inside",
        "malformed",
        "nonobject",
        "upstream_error",
        "no_done",
        "chop",
        "split_utf8",
        "coalesce",
        "slow",
    }
    assert wanted <= set(kinds)
    assert {s.client.split()[0] for s in drawn} == {"read", "leave", "give"}
    assert {s.scenario.first for s in drawn} == {None, 1, 2, 3}
    assert any(len(s.scenario.faults) >= 3 for s in drawn)  # faults combined


def test_a_short_soak_of_the_bundled_proxy_passes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "soak.json"
    status = soak.main(["--streams", "200", *SMALL, "--out", str(out)])
    document = json.loads(out.read_text())
    assert document["violations"] == [], capsys.readouterr().out
    assert status == 0
    assert document["streams"] == 200
    assert document["ok"]
    outcomes = document["outcomes"]
    assert outcomes["success"]
    assert outcomes["http_error"]
    assert outcomes["in_band_error"]
    assert sum(document["health"]["delta"][k] for k in ("succeeded", "failed", "cancelled")) == 200
    assert document["rss"]["growth_mib"] <= soak.RSS_LIMIT_MIB
    assert "violations: 0" in capsys.readouterr().out


def test_health_counters_that_disagree_are_caught_and_replayed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "soak.json"
    command = BROKEN % "count-as-success"
    status = soak.main(["--streams", "100", *SMALL, "--proxy-cmd", command, "--out", str(out)])
    assert status == 1
    document = json.loads(out.read_text())
    (found,) = [v for v in document["violations"] if v["check"] == "health-failed"]
    assert found["seed"] == 7
    assert found["streams"]
    named = found["streams"][0]
    assert named["replay"] == f"python bench/soak.py --replay 7:{named['index']}"
    assert named["model"] == soak.schedule(7, named["index"]).model
    capsys.readouterr()
    # A stream it names shows the bug again, alone on a fresh proxy. Not necessarily the
    # first: on a loaded machine a stream may fail by a timer and replay as a success.
    replayed = []
    for stream in found["streams"][:5]:
        replay = ["--replay", f"7:{stream['index']}", "--proxy-cmd", command]
        status = soak.main(replay)
        printed = capsys.readouterr().out
        replayed.append(stream["index"])
        if status == 1 and "health-failed" in printed and stream["model"] in printed:
            break
    else:
        pytest.fail(f"no named stream replayed the bug: {replayed}")


def test_an_error_sent_as_200_is_caught_per_stream(tmp_path: Path) -> None:
    out = tmp_path / "soak.json"
    command = BROKEN % "errors-as-200"
    status = soak.main(["--streams", "60", *SMALL, "--proxy-cmd", command, "--out", str(out)])
    assert status == 1
    document = json.loads(out.read_text())
    found = [v for v in document["violations"] if v["check"] == "not-an-event-stream"]
    assert found
    for v in found:
        s = soak.schedule(7, v["index"])
        assert (v["seed"], v["model"], v["client"]) == (7, s.model, s.client)
