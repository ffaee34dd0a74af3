"""Config: defaults, then the INI file, then the environment; every bad value named.

A wrong setting must fail loudly at start-up with the setting's name, not surface later
as a mysterious call failure; and the environment must win so containers can override.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from agi import config as config_module
from agi.config import ConfigError, load


def write_ini(tmp_path: Path, body: str, name: str = "callroute.conf") -> Path:
    path = tmp_path / name
    path.write_text(body, encoding="utf-8")
    return path


def snapshot(config: config_module.Config) -> dict[str, object]:
    """The settings' values (their sources are tested on their own)."""
    return {name: getattr(config, name) for name in config.__slots__ if name != "sources"}


def test_defaults_with_an_empty_file(empty_ini: Path) -> None:
    assert snapshot(load({"CALLROUTE_CONFIG": str(empty_ini)})) == {
        "redis_url": "redis://127.0.0.1:6379/0", "country": "FR", "calling_code": "33",
        "trunk_dial": "PJSIP/{number}@carrier", "default_device": "PJSIP/{ext}",
        "timeout_ms": 300, "prefix": "callroute:", "voicemail_context": "default",
        "audit_max": 100000, "log_format": "text"}


def test_ini_file_values_are_used(tmp_path: Path) -> None:
    ini = write_ini(tmp_path, "[callroute]\nredis_url = redis://db:6380/2\ncountry = us\n"
                              "trunk_dial = SIP/itsp/{number}\ndefault_device = SIP/{ext}\n"
                              "timeout_ms = 150\nprefix = cr:\nvoicemail_context = office\n"
                              "audit_max = 500\nlog_format = json\n")
    assert snapshot(load({"CALLROUTE_CONFIG": str(ini)})) == {
        "redis_url": "redis://db:6380/2", "country": "US", "calling_code": "1",
        "trunk_dial": "SIP/itsp/{number}", "default_device": "SIP/{ext}",
        "timeout_ms": 150, "prefix": "cr:", "voicemail_context": "office",
        "audit_max": 500, "log_format": "json"}


def test_environment_wins_over_ini(tmp_path: Path) -> None:
    ini = write_ini(tmp_path, "[callroute]\ncountry = US\ntimeout_ms = 150\nprefix = cr:\n")
    config = load({"CALLROUTE_CONFIG": str(ini), "CALLROUTE_COUNTRY": "FR",
                   "CALLROUTE_TIMEOUT_MS": "500"})
    assert (config.country, config.calling_code, config.timeout_ms, config.prefix) == (
        "FR", "33", 500, "cr:")


def test_sources_name_the_variable_the_file_or_the_default(tmp_path: Path) -> None:
    ini = write_ini(tmp_path, "[callroute]\ncountry = US\ntimeout_ms = 150\n")
    env = {"CALLROUTE_CONFIG": str(ini), "CALLROUTE_TIMEOUT_MS": "500"}
    expected = {key: (config_module.FROM_DEFAULT, "") for key in (
        "redis_url", "trunk_dial", "default_device", "prefix", "voicemail_context",
        "audit_max", "log_format")}
    expected["country"] = (config_module.FROM_FILE, str(ini))
    expected["timeout_ms"] = (config_module.FROM_ENVIRONMENT, "CALLROUTE_TIMEOUT_MS")
    assert load(env).sources == expected
    # Also when a value is invalid, and the error names the setting at fault.
    env["CALLROUTE_TIMEOUT_MS"] = "soon"
    assert config_module.sources(env) == expected
    with pytest.raises(ConfigError) as raised:
        load(env)
    assert raised.value.key == "timeout_ms"


def test_default_file_is_read_when_no_config_variable(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    ini = write_ini(tmp_path, "[callroute]\ncountry = US\n")
    monkeypatch.setattr(config_module, "DEFAULT_CONFIG_FILE", str(ini))
    assert load({}).country == "US"


def test_missing_default_file_is_fine(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(config_module, "DEFAULT_CONFIG_FILE", str(tmp_path / "absent.conf"))
    assert load({}).country == "FR"


def test_missing_explicit_file_is_an_error(tmp_path: Path) -> None:
    missing = tmp_path / "nope.conf"
    with pytest.raises(ConfigError) as info:
        load({"CALLROUTE_CONFIG": str(missing)})
    assert str(info.value) == f"config file {missing} (from CALLROUTE_CONFIG) does not exist"


def test_unknown_ini_key_is_an_error(tmp_path: Path) -> None:
    ini = write_ini(tmp_path, "[callroute]\ncountry = FR\nredis_ulr = redis://x\n")
    with pytest.raises(ConfigError) as info:
        load({"CALLROUTE_CONFIG": str(ini)})
    assert str(info.value) == f"unknown setting(s) in {ini} [callroute]: redis_ulr"


def test_unparseable_ini_is_an_error(tmp_path: Path) -> None:
    ini = write_ini(tmp_path, "country = FR\n")  # a key before any section
    with pytest.raises(ConfigError, match=re.escape(f"cannot read config file {ini}")):
        load({"CALLROUTE_CONFIG": str(ini)})


def test_other_sections_are_ignored(tmp_path: Path) -> None:
    ini = write_ini(tmp_path, "[general]\nfoo = bar\n")
    assert load({"CALLROUTE_CONFIG": str(ini)}).country == "FR"


@pytest.mark.parametrize(("var", "value", "message"), [
    ("CALLROUTE_COUNTRY", "XX", "CALLROUTE_COUNTRY 'XX' is not an ISO region code"),
    ("CALLROUTE_COUNTRY", "", "CALLROUTE_COUNTRY '' is not an ISO region code"),
    ("CALLROUTE_TIMEOUT_MS", "0", "CALLROUTE_TIMEOUT_MS must be a whole number"),
    ("CALLROUTE_TIMEOUT_MS", "10001", "CALLROUTE_TIMEOUT_MS must be a whole number"),
    ("CALLROUTE_TIMEOUT_MS", "0.5", "CALLROUTE_TIMEOUT_MS must be a whole number"),
    ("CALLROUTE_TIMEOUT_MS", "fast", "CALLROUTE_TIMEOUT_MS must be a whole number"),
    ("CALLROUTE_TRUNK_DIAL", "PJSIP/carrier", "CALLROUTE_TRUNK_DIAL must contain {number}"),
    ("CALLROUTE_TRUNK_DIAL", "PJSIP/{number}&PJSIP/{number}",
     "CALLROUTE_TRUNK_DIAL must contain {number}"),
    ("CALLROUTE_TRUNK_DIAL", "PJSIP/{number}@carrier,30",
     "CALLROUTE_TRUNK_DIAL must contain {number}"),
    ("CALLROUTE_DEFAULT_DEVICE", "PJSIP/1001", "CALLROUTE_DEFAULT_DEVICE must contain {ext}"),
    ("CALLROUTE_DEFAULT_DEVICE", "PJSIP/{ext}&Local/x",
     "CALLROUTE_DEFAULT_DEVICE must contain {ext}"),
    ("CALLROUTE_PREFIX", "", "CALLROUTE_PREFIX must be non-empty"),
    ("CALLROUTE_PREFIX", "call route:", "CALLROUTE_PREFIX must be non-empty"),
    ("CALLROUTE_PREFIX", "cr:*", "CALLROUTE_PREFIX must be non-empty"),
    ("CALLROUTE_REDIS_URL", "http://127.0.0.1:6379", "CALLROUTE_REDIS_URL must start with"),
    ("CALLROUTE_VOICEMAIL_CONTEXT", "", "CALLROUTE_VOICEMAIL_CONTEXT must be"),
    ("CALLROUTE_VOICEMAIL_CONTEXT", "office,b", "CALLROUTE_VOICEMAIL_CONTEXT must be"),
    ("CALLROUTE_VOICEMAIL_CONTEXT", "a@b", "CALLROUTE_VOICEMAIL_CONTEXT must be"),
    ("CALLROUTE_VOICEMAIL_CONTEXT", "x" * 33, "CALLROUTE_VOICEMAIL_CONTEXT must be"),
    ("CALLROUTE_VOICEMAIL_CONTEXT", "caf\u00e9", "CALLROUTE_VOICEMAIL_CONTEXT must be"),
    ("CALLROUTE_AUDIT_MAX", "0", "CALLROUTE_AUDIT_MAX must be a whole number"),
    ("CALLROUTE_AUDIT_MAX", "1e6", "CALLROUTE_AUDIT_MAX must be a whole number"),
], ids=lambda x: repr(x) if isinstance(x, str) else None)
def test_bad_values_are_named(var: str, value: str, message: str, empty_ini: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load({"CALLROUTE_CONFIG": str(empty_ini), var: value})
    assert str(info.value).startswith(message)
    assert "\n" not in str(info.value)


def test_bad_ini_value_is_named_too(tmp_path: Path) -> None:
    ini = write_ini(tmp_path, "[callroute]\ntimeout_ms = soon\n")
    with pytest.raises(ConfigError, match=r"^CALLROUTE_TIMEOUT_MS must be a whole number"):
        load({"CALLROUTE_CONFIG": str(ini)})


@pytest.mark.parametrize("url", ["redis://:s3cret@127.0.0.1:6379/0",
                                 "rediss://user:pw@redis.example:6380/1",
                                 "unix:///run/redis.sock?db=2"])
def test_supported_redis_urls(url: str, empty_ini: Path) -> None:
    assert load({"CALLROUTE_CONFIG": str(empty_ini), "CALLROUTE_REDIS_URL": url}).redis_url == url


def test_templates(empty_ini: Path) -> None:
    config = load({"CALLROUTE_CONFIG": str(empty_ini)})
    assert config.default_device_for("1001") == "PJSIP/1001"
