"""tests/curl_examples.py, the reader of docs' curl examples: what it understands, what it
refuses, and the `cat -A` it imitates."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from tests.curl_examples import Unsupported, cat_a, commands, examples, matches, parse_curl


def test_curl_examples_matches_with_ellipses():
    printed = "data: one\n\ndata: two\n\ndata: [DONE]\n\n"
    assert matches("data: one\n\ndata: two\n\ndata: [DONE]", printed)
    assert matches("data: o…\n…\ndata: [DONE]", printed)
    assert matches("…\ndata: [DONE]", printed)
    assert matches("data: one\n…\ndata: two\n…", printed)
    assert not matches("data: one\n\ndata: [DONE]", printed)  # a line left out, unsaid
    assert not matches("data: one\n\ndata: two", printed)  # the end left out, unsaid
    assert not matches("data: on\n…", printed)  # `…` only where written
    assert not matches("…\ndata: [DONE]\nmore", printed)
    # Trailing spaces and CRs are what a terminal does not show; other characters count.
    assert matches("HTTP/1.1 429\nx: y", "HTTP/1.1 429 \r\nx: y\r\n")
    assert not matches("HTTP/1.1 42", "HTTP/1.1 429 \r\n")


def test_curl_examples_parse_what_the_docs_use():
    curl = parse_curl(
        "curl -sSN -m 2 -H 'X-A: b' -X PUT $FAKE/v1/chat/completions -d '{\"model\": \"m\"}'"
    )
    assert curl.flags == {"s", "S", "N"}
    assert curl.max_time == 2.0
    assert curl.headers == (("X-A", "b"),)
    assert curl.method == "PUT"
    assert curl.url == "$FAKE/v1/chat/completions"
    assert curl.model == "m"
    assert parse_curl("curl -s $FAKE -d x").method == "POST"
    assert parse_curl("curl -s $FAKE").method == "GET"
    piped = parse_curl("curl -s -o /dev/null -w '%{http_code}\\n' $FAKE | cat -A")
    assert piped.discard
    assert piped.cat_a
    assert piped.write_out == "%{http_code}\\n"
    loop = commands("for i in 1 2 3; do\n  curl -s \\\n    $FAKE\ndone\ncurl -s $FAKE/x")
    assert [len(runs) for runs in loop] == [3, 1]


@pytest.mark.parametrize(
    "command",
    [
        pytest.param("curl -sS --retry 3 $FAKE", id="long-option"),
        pytest.param("curl -sSk $FAKE", id="unknown-flag"),
        pytest.param("curl -S $FAKE", id="progress-meter"),
        pytest.param("curl -s -o out.txt $FAKE", id="output-file"),
        pytest.param("curl -s $FAKE | jq .", id="other-pipe"),
        pytest.param("curl -s $FAKE $FAKE", id="two-urls"),
        pytest.param("curl -s -H nocolon $FAKE", id="bad-header"),
        pytest.param("wget $FAKE", id="not-curl"),
        pytest.param("for i in 1 2; do curl -s $FAKE/$i; done", id="loop-variable-used"),
    ],
)
def test_curl_examples_refuse_what_they_would_not_check(command):
    with pytest.raises(Unsupported):
        commands(command)


def test_curl_examples_want_an_output_after_each_example():
    with pytest.raises(Unsupported, match="no ```text output"):
        examples("```sh\ncurl -s $FAKE\n```\n\nprose\n")
    (example,) = examples("```sh\ncurl -s $FAKE\n```\n```text\nout\n```\n```text fake\nline\n```\n")
    assert (example.shown, example.fake, example.line) == ("out", "line", 1)
    assert examples("```sh\npython -m streamproof.fake_providers\n```\n") == []


@pytest.mark.skipif(shutil.which("cat") is None, reason="no cat(1) to compare with")
def test_curl_examples_cat_a_is_gnu_cat_a():
    every_byte = bytes(range(256)) + b"\r\n\xef\xbb\xbfdata: x\r\r\n"
    real = subprocess.run(["cat", "-A"], input=every_byte, capture_output=True, check=True)
    assert cat_a(every_byte) == real.stdout
