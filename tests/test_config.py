"""The configuration: the shipped example stays complete, errors name their dotted key."""

from __future__ import annotations

import os
import re
import stat
import subprocess
import sys
from pathlib import Path
from typing import get_args, get_type_hints

import pytest
import yaml

from bouncefilter import config
from bouncefilter.config import ConfigError, Settings, build, loader

EXAMPLE = Path(__file__).resolve().parent.parent / "contrib" / "bouncefilter.yaml"
KEY = "0123456789abcdef0123456789abcdef"
VERP = f"verp: {{domain: bounces.example.com, keys: [{KEY}]}}\n"
FORWARD = "accounts: [{{name: a, domains: [example.com], tracking: false, forward: [{}]}}]"


def settings_classes(cls: type = Settings) -> list[type]:
    """Every settings class reachable from ``cls``, ``cls`` first."""
    found = [cls]
    for hint in get_type_hints(cls).values():
        for candidate in (hint, *get_args(hint)):
            if build.is_settings(candidate) and candidate not in found:
                found.extend(c for c in settings_classes(candidate) if c not in found)
    return found


def test_the_example_names_every_key_of_every_settings_class():
    text = EXAMPLE.read_text(encoding="utf-8")
    written = set(re.findall(r"^[ \t]*(?:#[ \t]*)?(?:-[ \t]+)?([a-z_]+):", text, re.MULTILINE))
    for cls in settings_classes():
        missing = set(cls._fields) - written
        assert not missing, f"{EXAMPLE.name} does not show {cls.__name__}: {sorted(missing)}"


def test_the_example_parses_and_states_the_defaults():
    example = config.load(str(EXAMPLE))
    defaults = Settings()
    assert example.verp.domain == "bounces.example.com"
    assert [account.name for account in example.accounts] == ["shop", "newsletter"]
    assert example.accounts[1].tracking is False
    # The example writes out the default of every section it does not need to change.
    assert example.database == defaults.database
    for section in ("milter", "pipe", "retention", "logging", "smtp", "forward"):
        assert getattr(example, section) == getattr(defaults, section), section
    assert (example.verp.prefix, example.verp.max_age_days) == (defaults.verp.prefix, defaults.verp.max_age_days)


def test_an_empty_file_gives_the_defaults(config_file):
    settings = config.load(str(config_file("# nothing but a comment\n")))
    assert settings == Settings()
    assert settings.database == "/var/lib/bouncefilter/bouncefilter.db"
    assert settings.verp.prefix == "b"
    assert settings.verp.max_age_days == 60
    assert settings.verp.domain is None and settings.verp.keys == ()
    assert settings.milter.on_error == "accept"
    assert settings.retention.raw_days == 30
    assert settings.logging.level == "INFO"
    assert settings.accounts == ()


def test_settings_are_frozen():
    with pytest.raises(AttributeError):
        Settings().verp.prefix = "x"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("text", "key", "message"),
    [
        ("verp: {prefx: c}", "verp.prefx", "unknown key (did you mean prefix?)"),
        ("keyz: [x]", "keyz",
         "unknown key (expected one of database, database_auto_migrate, database_busy_timeout_ms, verp,"),
        ("database_busy_timeout_ms: -1", "database_busy_timeout_ms", "must be 0 or more"),
        ("accounts:\n  - {name: a, domains: [example.com]}\n  - {name: b, domains: example.com}",
         "accounts[1].domains", "expected a list, got a string"),
        ("accounts: {name: a}", "accounts", "expected a list, got a mapping"),
        ("pipe: 3", "pipe", "expected a mapping of settings, got a number"),
        ("database: 5", "database", "expected a string, got a number"),
        ("database: ''", "database", "must not be empty"),
        ("verp: {max_age_days: '60'}", "verp.max_age_days", "expected a whole number, got a string"),
        ("verp: {max_age_days: true}", "verp.max_age_days", "expected a whole number, got a boolean"),
        ("verp: {max_age_days: 0}", "verp.max_age_days", "must be at least 1"),
        ("verp: {domain: 'not a domain'}", "verp.domain", "not a domain name"),
        ("verp: {prefix: 'a+b'}", "verp.prefix", "prefix may hold only"),
        ("verp: {domain: b.example.com}", "verp.keys", "required when verp.domain is set"),
        ("verp: {keys: [short]}", "verp.keys[0]", "too short"),
        (f"verp: {{keys: [{KEY}], keys_file: k}}", "verp.keys_file", "give keys or keys_file, not both"),
        ("milter: {on_error: reject}", "milter.on_error", "expected one of accept, tempfail, got 'reject'"),
        ("milter: {socket: /run/milter.sock}", "milter.socket", "expected unix:/PATH or inet:PORT@HOST"),
        ("milter: {socket: 'inet:70000@127.0.0.1'}", "milter.socket", "expected unix:/PATH"),
        ("milter: {max_connections: 0}", "milter.max_connections", "must be at least 1"),
        ("milter: {idle_timeout: 0}", "milter.idle_timeout", "must be more than 0"),
        ("retention: {raw_days: 0}", "retention.raw_days", "must be at least 1"),
        ("pipe: {max_bytes: 10}", "pipe.max_bytes", "must be at least 1024"),
        ("logging: {level: verbose}", "logging.level", "expected one of DEBUG, INFO, WARNING, ERROR"),
        ("logging: {target: syslg}", "logging.target", "expected one of syslog, stderr"),
        ("accounts: [{domains: [example.com]}]", "accounts[0].name", "required"),
        ("accounts: [{name: 'a b', domains: [example.com], tracking: false}]", "accounts[0].name", "expected 1 to 64"),
        ("accounts: [{name: a, tracking: false}]", "accounts[0]", "give at least one of sasl_users, senders or domains"),
        ("accounts: [{name: a, domains: [example.com], tracking: 'yes'}]", "accounts[0].tracking",
         "expected true or false, got a string"),
        ("accounts: [{name: a, senders: [nobody], tracking: false}]", "accounts[0].senders[0]", "not an address"),
        ("accounts: [{name: a, sasl_users: [a, 7], tracking: false}]", "accounts[0].sasl_users[1]", "expected a string"),
        ("accounts: [{name: a, domains: [example.com]}]", "verp.domain", "required when an account has tracking on"),
        (VERP + "accounts: [{name: a, domains: [example.com]}, {name: A, domains: [example.org]}]",
         "accounts[1].name", "duplicate account name 'A'"),
        (FORWARD.format("{type: smtp}"), "accounts[0].forward[0].to", "required for type smtp"),
        (FORWARD.format("{type: smtp, to: nobody}"), "accounts[0].forward[0].to", "not an address"),
        (FORWARD.format("{type: mail, to: a@example.com}"), "accounts[0].forward[0].type",
         "expected one of smtp, webhook"),
        (FORWARD.format("{type: smtp, to: a@example.com, url: 'https://example.com/'}"),
         "accounts[0].forward[0].url", "only for type webhook"),
        (FORWARD.format("{type: smtp, to: a@example.com, kinds: [bounce, bonce]}"),
         "accounts[0].forward[0].kinds[1]",
         "expected one of bounce, delay, delivered, complaint, autoreply, challenge, reply, forged, expired, notoken,"),
        (FORWARD.format("{type: smtp, to: a@example.com, kinds: [bounce, forged]}"),
         "accounts[0].forward[0].kinds[1]", "forged rows are never forwarded"),
        (FORWARD.format("{type: smtp, to: a@example.com, kinds: []}"), "accounts[0].forward[0].kinds",
         "give at least one of bounce"),
        (FORWARD.format("{type: smtp, to: a@example.com}, {type: smtp, to: a@example.com, kinds: [delay]}"),
         "accounts[0].forward[1]", "the same destination as forward[0]"),
        (FORWARD.format(f"{{type: webhook, secrets: [{KEY}]}}"), "accounts[0].forward[0].url", "required"),
        (FORWARD.format(f"{{type: smtp, to: a@example.com}}, {{type: webhook, url: 'http://example.com/', secrets: [{KEY}]}}"),
         "accounts[0].forward[1].url", "http is allowed only for a loopback host"),
        (FORWARD.format(f"{{type: webhook, url: 'ftp://example.com/', secrets: [{KEY}]}}"),
         "accounts[0].forward[0].url", "expected https://HOST[:PORT]/PATH"),
        (FORWARD.format(f"{{type: webhook, url: 'https://example.com:99999/', secrets: [{KEY}]}}"),
         "accounts[0].forward[0].url", "not a port: 99999"),
        (FORWARD.format("{type: webhook, url: 'https://example.com/'}"), "accounts[0].forward[0].secrets",
         "give at least one"),
        (FORWARD.format("{type: webhook, url: 'https://example.com/', secrets: [short]}"),
         "accounts[0].forward[0].secrets[0]", "too short"),
        (FORWARD.format("{type: webhook, url: 'https://example.com/', secrets: ['whsec_not base64!']}"),
         "accounts[0].forward[0].secrets[0]", "a secret starting whsec_ must continue in base64"),
        (FORWARD.format("{type: webhook, url: 'https://example.com/', secrets: [whsec_MDEyMzQ1Njc4OWFiY2RlZg==]}"),
         "accounts[0].forward[0].secrets[0]", "a whsec_ secret must decode to 24 to 64 octets (Standard Webhooks); this one has 16"),
        (FORWARD.format(f"{{type: webhook, url: 'https://example.com/', secrets: [whsec_{'A' * 88}]}}"),
         "accounts[0].forward[0].secrets[0]", "a whsec_ secret must decode to 24 to 64 octets (Standard Webhooks); this one has 66"),
        ("smtp: {port: 0}", "smtp.port", "expected 1 to 65535"),
        ("smtp: {username: u}", "smtp.password", "give username and password together"),
        ("forward: {timeout: 'ten'}", "forward.timeout", "expected a number, got a string"),
        ("forward: {max_age: 0}", "forward.max_age", "must be more than 0"),
        ("forward: {timeout: 200}", "forward.lease", "must be at least twice forward.timeout"),
        ("suppression: {enforce: bounce}", "suppression.enforce", "expected one of reject, discard, off"),
        ("suppression: {hard_after: 0}", "suppression.hard_after", "must be at least 1"),
        ("suppression: {soft: {half_lfe: 3}}", "suppression.soft.half_lfe", "unknown key (did you mean half_life?)"),
        ("suppression: {soft: {duration: 0}}", "suppression.soft.duration", "must be more than 0"),
        ("accounts: [{name: a, domains: [example.com], tracking: false, suppression: {enforse: off}}]",
         "accounts[0].suppression.enforse", "unknown key (did you mean enforce?)"),
        ("suppression: {soft: {threshold: 2}}\n"
         "accounts: [{name: a, domains: [example.com], tracking: false, suppression: {soft: {threshold: -1}}}]",
         "accounts[0].suppression.soft.threshold", "must be more than 0"),
    ],
)
def test_an_error_names_its_dotted_key(config_file, text, key, message):
    path = config_file(text)
    with pytest.raises(ConfigError) as caught:
        config.load(str(path))
    assert caught.value.key == key
    assert str(caught.value).startswith(f"{path}: {key}: {message}")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("- a list\n", "expected a mapping of settings, got a list"),
        ("verp: [\n", "not valid YAML: line 2"),
        ("verp:\n  prefix: a\n  prefix: b\n", "not valid YAML: line 3, column 3: duplicate key 'prefix'"),
    ],
)
def test_an_error_in_the_file_as_a_whole_names_the_file(config_file, text, message):
    path = config_file(text)
    with pytest.raises(ConfigError, match=re.escape(message)) as caught:
        config.load(str(path))
    assert caught.value.key == ""
    assert str(caught.value).startswith(f"{path}: ")


def test_a_missing_file_is_an_error_naming_it(tmp_path):
    path = tmp_path / "nowhere.yaml"
    with pytest.raises(ConfigError) as caught:
        config.load(str(path))
    assert str(caught.value) == f"{path}: cannot read the configuration: No such file or directory"


def test_locate_prefers_the_argument_then_the_environment_then_the_default():
    environ = {config.ENVIRONMENT_VARIABLE: "/srv/env.yaml"}
    assert config.locate("/srv/arg.yaml", environ) == "/srv/arg.yaml"
    assert config.locate(None, environ) == "/srv/env.yaml"
    assert config.locate(None, {}) == config.DEFAULT_PATH == "/etc/bouncefilter/bouncefilter.yaml"


def test_relative_paths_are_relative_to_the_configuration_folder(config_file, tmp_path):
    settings = config.load(str(config_file("database: data/b.db\nverp: {keys_file: ../k}\n")))
    assert settings.database == str(tmp_path / "data" / "b.db")
    assert settings.verp.keys_file == str(tmp_path.parent / "k")


def test_values_are_normalised(config_file):
    text = VERP + (
        "logging: {level: debug, target: STDERR}\n"
        "accounts: [{name: Shop, senders: [Orders@Shop.Example.COM], domains: [Shop.Example.COM], sasl_users: [Shop]}]\n"
    )
    settings = config.load(str(config_file(text)))
    assert settings.logging.level == "DEBUG" and settings.logging.target == "stderr"
    account = settings.accounts[0]
    assert account.senders == ("orders@shop.example.com",)
    assert account.domains == ("shop.example.com",)
    assert account.sasl_users == ("Shop",)  # SASL logins may be case-sensitive
    assert settings.account("shop") is account and settings.account("other") is None


def test_verp_keys_come_from_the_list_or_from_the_file(config_file, tmp_path):
    assert config.verp_keys(config.load(str(config_file(VERP))).verp) == (KEY,)
    (tmp_path / "verp.keys").write_text(f"# newest first\n{KEY}\n\n  {KEY[::-1]}  \n", encoding="utf-8")
    settings = config.load(str(config_file("verp: {domain: bounces.example.com, keys_file: verp.keys}")))
    assert config.verp_keys(settings.verp) == (KEY, KEY[::-1])
    assert config.verp_keys(Settings().verp) == ()


@pytest.mark.parametrize(
    ("content", "message"),
    [(None, "cannot read"), ("# only a comment\n", "no keys in"), ("short\n", "line 1: key too short")],
)
def test_a_bad_keys_file_is_an_error_naming_verp_keys_file(tmp_path, content, message):
    path = tmp_path / "verp.keys"
    if content is not None:
        path.write_text(content, encoding="utf-8")
    with pytest.raises(ConfigError, match=message) as caught:
        config.verp_keys(config.VerpSettings(domain="bounces.example.com", keys_file=str(path)))
    assert caught.value.key == "verp.keys_file"


def test_describe_shows_the_effective_settings_without_the_keys(config_file):
    settings = config.load(str(config_file(VERP + "accounts: [{name: shop, domains: [example.com]}]")))
    text = config.describe(settings)
    assert KEY not in text
    shown = yaml.safe_load(text)
    assert shown["verp"]["keys"] == ["<hidden>"]
    assert shown["retention"] == {"days": 365, "raw_days": 30}
    assert shown["accounts"][0]["name"] == "shop"
    assert config.load(str(config_file(config.describe(Settings()), "again.yaml"))) == Settings()


# -- the parsed copy the pipe reads -------------------------------------------------------


def test_a_parsed_copy_is_written_beside_the_file_and_read_instead_of_the_yaml(config_file, monkeypatch):
    path = str(config_file(VERP + "database: a.db\n"))
    os.chmod(path, 0o640)
    cache = config.write_cache(path)
    assert cache == path + config.CACHE_SUFFIX
    assert stat.S_IMODE(os.stat(cache).st_mode) == 0o640
    expected = config.load(path)

    def no_yaml(raw: bytes, where: str) -> None:
        raise AssertionError("the YAML was parsed")

    monkeypatch.setattr(loader, "_parse", no_yaml)
    assert config.load(path) == expected


def test_a_changed_file_makes_the_parsed_copy_stale_at_once(config_file):
    path = config_file(VERP + "database: a.db\n")
    config.write_cache(str(path))
    path.write_text(VERP + "database: b.db\n", encoding="utf-8")  # same size, same inode, same instant
    assert config.load(str(path)).database.endswith("b.db")


@pytest.mark.parametrize("content", ["", "not json", "[1, 2]", '{"sha256": "0", "data": {"database": "x"}}'])
def test_a_broken_or_foreign_parsed_copy_is_ignored(config_file, content):
    path = config_file("database: a.db\n")
    Path(str(path) + config.CACHE_SUFFIX).write_text(content, encoding="utf-8")
    assert config.load(str(path)).database.endswith("a.db")


def test_an_invalid_file_gets_no_parsed_copy(config_file):
    path = config_file("databse: a.db\n")
    with pytest.raises(ConfigError, match="databse"):
        config.write_cache(str(path))
    assert not Path(str(path) + config.CACHE_SUFFIX).exists()


def test_with_a_fresh_parsed_copy_loading_imports_no_yaml(config_file):
    path = str(config_file(VERP))
    config.write_cache(path)
    code = f"import sys; from bouncefilter import config; config.load({path!r}); print('yaml' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert done.stdout == "False\n"


def test_forward_targets_have_stable_names_and_choose_by_kind(config_file):
    targets = ("{type: smtp, to: return_path}, "
               f"{{type: webhook, url: 'http://[::1]:8080/hook', secrets: [{KEY}], kinds: [bounce, DELAY]}}")
    settings = config.load(str(config_file(FORWARD.format(targets) + "\nforward: {timeout: 1.5}")))
    assert settings.forward_targets("A", "bounce") == ("a:smtp:return_path", "a:webhook:http://[::1]:8080/hook")
    assert settings.forward_targets("a", "delay") == ("a:webhook:http://[::1]:8080/hook",)
    assert settings.forward_targets("a", "reply") == ("a:smtp:return_path",)
    assert settings.forward_targets("", "bounce") == settings.forward_targets("other", "bounce") == ()
    assert settings.forward.timeout == 1.5
    assert KEY not in config.describe(settings)


def test_an_accounts_suppression_rules_lie_over_the_defaults_key_by_key(config_file):
    text = ("suppression: {enforce: discard, hard_after: 2, soft: {half_life: 3, threshold: 4}}\n"
            "accounts: [{name: a, domains: [example.com], tracking: false, suppression: {soft: {threshold: 6}}},"
            " {name: b, domains: [example.org], tracking: false},"
            " {name: c, domains: [example.net], tracking: false, suppression: {enforce: off}}]")  # YAML's false
    a, b, c = config.load(str(config_file(text))).accounts
    assert a.suppression.rules() == (2, 3, 6, 14) and a.suppression.enforce == "discard"
    assert b.suppression.rules() == (2, 3, 4, 14) and b.suppression.enforce == "discard"
    assert c.suppression.rules() == (2, 3, 4, 14) and c.suppression.enforce == "off"
    plain = config.load(str(config_file("accounts: [{name: d, domains: [example.com], tracking: false}]")))
    assert plain.accounts[0].suppression.rules() == (1, 7, 2, 14) and plain.accounts[0].suppression.enforce == "reject"


def test_forward_targets_say_whether_they_want_suppression_events(config_file):
    targets = f"{{type: smtp, to: return_path, suppressions: false}}, {{type: webhook, url: 'http://[::1]:8/h', secrets: [{KEY}]}}"
    settings = config.load(str(config_file(FORWARD.format(targets))))
    assert settings.suppression_targets("a") == ("a:webhook:http://[::1]:8/h",)
    assert settings.suppression_targets("other") == ()


def test_a_whsec_secret_is_decoded_and_a_plain_one_taken_as_it_is():
    assert config.secret_key("whsec_MDEyMzQ1Njc4OWFiY2RlZg==") == b"0123456789abcdef"
    assert config.secret_key("plain secret, long enough") == b"plain secret, long enough"
