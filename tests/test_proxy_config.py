"""The proxy's config loader: good files load, every mistake names its key."""

from __future__ import annotations

import logging
import tomllib
from pathlib import Path

import pytest

from streamproof.proxy.config import Config, ConfigError, load_config, parse_config
from streamproof.proxy.providers import ProviderPool

REPO_CONFIG = Path(__file__).resolve().parent.parent / "config.toml"

MINIMAL = """
[providers.fake]
base_url = "http://127.0.0.1:9/v1/"
api_key_env = "STREAMPROOF_UPSTREAM_KEY"

[[routes]]
model = "*"
providers = ["fake"]
"""


def parse(text: str) -> Config:
    return parse_config(tomllib.loads(text))


def providers_for(config: Config, model: str) -> tuple[str, ...] | None:
    route = config.route_for(model)
    return None if route is None else route.providers


def test_config_repo_file_loads():
    config = load_config(REPO_CONFIG)
    assert config.server.host == "127.0.0.1"
    assert config.timeouts.first_byte == 30.0
    assert config.retry.max_attempts == 3
    assert set(config.providers) == {"kimi", "nvidia", "mistral"}
    assert config.providers["kimi"].api_key_env == "KIMI_API_KEY"
    assert providers_for(config, "kimi-for-coding") == ("kimi", "nvidia")
    assert providers_for(config, "mistral-large-latest") == ("mistral",)
    assert config.route_for("gpt-4o") is None


def test_config_minimal_gets_defaults_and_strips_base_url():
    config = parse(MINIMAL)
    assert config.timeouts.total == 600.0
    assert config.retry.deadline == 60.0
    assert config.providers["fake"].base_url == "http://127.0.0.1:9/v1"
    assert providers_for(config, "anything.at-all") == ("fake",)


def test_config_integer_seconds_become_floats():
    config = parse("[timeouts]\nidle = 1\n" + MINIMAL)
    assert config.timeouts.idle == 1.0
    assert isinstance(config.timeouts.idle, float)


def test_config_model_mapping_applies_only_to_mapped_names():
    text = MINIMAL.replace(
        'api_key_env = "STREAMPROOF_UPSTREAM_KEY"',
        'api_key_env = "STREAMPROOF_UPSTREAM_KEY"\nmodels = { "a" = "upstream-a" }',
    )
    config = parse(text)
    assert config.providers["fake"].upstream_model("a") == "upstream-a"
    assert config.providers["fake"].upstream_model("b") == "b"


def test_config_first_matching_route_wins():
    text = MINIMAL + '\n[[routes]]\nmodel = "kimi-*"\nproviders = ["fake"]\n'
    text = text.replace('model = "*"', 'model = "k*"', 1)
    config = parse(text)
    assert config.route_for("kimi-x") is config.routes[0]


@pytest.mark.parametrize(
    ("text", "key"),
    [
        pytest.param("[timeouts]\nfrist_byte = 1.0\n", "timeouts.frist_byte", id="timeouts"),
        pytest.param("[server]\nhots = 'x'\n", "server.hots", id="server"),
        pytest.param("[retry]\nmax_attempt = 2\n", "retry.max_attempt", id="retry"),
        pytest.param("colour = 'blue'\n", "colour", id="top-level"),
    ],
)
def test_config_unknown_key_is_named(text, key):
    with pytest.raises(ConfigError) as info:
        parse(text + MINIMAL)
    assert info.value.key == key
    assert "unknown key" in str(info.value)
    assert "accepted" in str(info.value)


def test_config_unknown_provider_key_is_named():
    with pytest.raises(ConfigError) as info:
        parse(MINIMAL.replace("base_url", "baseurl"))
    assert info.value.key == "providers.fake.baseurl"


@pytest.mark.parametrize(
    ("text", "key", "accepted"),
    [
        pytest.param("[timeouts]\nidle = 'fast'\n", "timeouts.idle", "number", id="str-seconds"),
        pytest.param("[timeouts]\nidle = true\n", "timeouts.idle", "number", id="bool-seconds"),
        pytest.param("[timeouts]\nidle = 0\n", "timeouts.idle", "greater than 0", id="zero"),
        pytest.param("[timeouts]\ntotal = nan\n", "timeouts.total", "seconds", id="nan"),
        pytest.param("[retry]\nmax_attempts = 1.5\n", "retry.max_attempts", "integer", id="float"),
        pytest.param("[retry]\nmax_attempts = 0\n", "retry.max_attempts", "at least 1", id="zero"),
        pytest.param("[retry]\nbackoff_base = -1\n", "retry.backoff_base", "0 or more", id="neg"),
        pytest.param("[server]\nport = true\n", "server.port", "integer", id="bool-port"),
        pytest.param("[server]\nport = 70000\n", "server.port", "between", id="big-port"),
        pytest.param("server = 3\n", "server", "table", id="not-a-table"),
        pytest.param("[server]\nheartbeat = -1\n", "server.heartbeat", "0 or more", id="beat"),
        pytest.param(
            "[health]\nmin_success_rate = 95\n", "health.min_success_rate", "fraction", id="pct"
        ),
        pytest.param("[health]\nwindow = 0\n", "health.window", "at least 1", id="window"),
        pytest.param("[health]\nmin_rate = 1\n", "health.min_rate", "unknown key", id="typo"),
        pytest.param("[logging]\nlevel = 'LOUD'\n", "logging.level", "one of", id="level"),
        pytest.param("[logging]\nfile = 3\n", "logging.file", "path", id="file"),
    ],
)
def test_config_wrong_type_says_what_is_accepted(text, key, accepted):
    with pytest.raises(ConfigError) as info:
        parse(text + MINIMAL)
    assert info.value.key == key
    assert accepted in str(info.value)


@pytest.mark.parametrize(
    ("old", "new", "key"),
    [
        pytest.param('"http://127.0.0.1:9/v1/"', '"ftp://x"', "base_url", id="scheme"),
        pytest.param('"STREAMPROOF_UPSTREAM_KEY"', '"${KEY}"', "api_key_env", id="env-syntax"),
        pytest.param('providers = ["fake"]', 'providers = ["nope"]', "providers", id="route"),
        pytest.param('providers = ["fake"]', "providers = []", "providers", id="empty-chain"),
        pytest.param('model = "*"', "model = 1", "model", id="pattern"),
    ],
)
def test_config_bad_provider_or_route_is_named(old, new, key):
    with pytest.raises(ConfigError) as info:
        parse(MINIMAL.replace(old, new))
    assert info.value.key.endswith(key)


def test_config_models_must_map_strings():
    text = MINIMAL.replace(
        'api_key_env = "STREAMPROOF_UPSTREAM_KEY"',
        'api_key_env = "STREAMPROOF_UPSTREAM_KEY"\nmodels = { "a" = 1 }',
    )
    with pytest.raises(ConfigError, match="models"):
        parse(text)


def test_config_unreadable_file_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[server\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(bad)


@pytest.mark.parametrize("value", [None, "", "   "], ids=["unset", "empty", "blank"])
def test_config_unset_key_variable_is_a_startup_error(value):
    environ = {} if value is None else {"STREAMPROOF_UPSTREAM_KEY": value}
    with pytest.raises(ConfigError) as raised:
        ProviderPool(parse(MINIMAL), environ)
    assert raised.value.key == "providers.fake.api_key_env"
    assert "STREAMPROOF_UPSTREAM_KEY" in str(raised.value)


def test_config_set_key_variable_is_used_and_never_logged(caplog):
    with caplog.at_level(logging.DEBUG, logger="proxy"):
        pool = ProviderPool(parse(MINIMAL), {"STREAMPROOF_UPSTREAM_KEY": "sk-secret\n"})
    assert pool["fake"].usable
    assert pool.secrets == ("sk-secret",)
    assert "sk-secret" not in caplog.text
