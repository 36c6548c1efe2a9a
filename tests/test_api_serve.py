"""The API as it is run: ``bouncefilter token``, ``bouncefilter api`` and gunicorn
loading ``bouncefilter.api.app:application``, each a real process on loopback."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from api_data import Served, fetch, seed

ROOT = Path(__file__).resolve().parent.parent
TOKEN = re.compile(r"bf_[0-9a-f]{8}_[A-Za-z0-9_-]{43}")
WINDOW = "/v1/bounces/2026-11-01/2026-11-04"


def bouncefilter(served: Served, *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "bouncefilter", "--config", served.config_path, *argv],
                          capture_output=True, text=True, timeout=60, check=False)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def process(argv: list[str], port: int, served: Served) -> Iterator[subprocess.Popen[str]]:
    """``argv`` running until /healthz answers on ``port``; SIGTERM at the end."""
    env = {**os.environ, "BOUNCEFILTER_CONFIG": served.config_path}
    child = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if fetch(f"http://127.0.0.1:{port}/healthz").status == 200:
                    break
            except OSError:
                pass
            if child.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"{argv} did not start: {child.communicate()[1]}")
            time.sleep(0.1)
        yield child
    finally:
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)
            try:
                child.wait(30)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()


@pytest.fixture
def served(tmp_path: Path) -> Served:
    return seed(tmp_path)


def test_token_create_prints_the_token_alone_and_it_works_until_revoked(served):
    created = bouncefilter(served, "token", "create", "--account", "shop", "--note", "the shop's exports")
    assert created.returncode == 0 and created.stderr == ""
    assert TOKEN.fullmatch(created.stdout.rstrip("\n")) and created.stdout.count("\n") == 1
    token = created.stdout.strip()
    key_id = token[3:11]
    listing = bouncefilter(served, "token", "list")
    line = next(line for line in listing.stdout.splitlines() if line.startswith(key_id))
    assert line.split("\t")[1] == "shop" and line.endswith("the shop's exports") and "\t-\t" in line
    assert token not in listing.stdout
    port = free_port()
    with process([sys.executable, "-m", "bouncefilter", "api", "--listen", f"127.0.0.1:{port}"], port, served):
        assert fetch(f"http://127.0.0.1:{port}{WINDOW}", token).status == 200
        revoked = bouncefilter(served, "token", "revoke", key_id)
        assert revoked.returncode == 0 and revoked.stdout == f"revoked {key_id}\n"
        assert fetch(f"http://127.0.0.1:{port}{WINDOW}", token).status == 401
    assert bouncefilter(served, "token", "revoke", key_id).returncode == 1


def test_token_create_refuses_an_unknown_account(served):
    done = bouncefilter(served, "token", "create", "--account", "shopp")
    assert done.returncode == 1 and done.stdout == ""
    assert "no account 'shopp' in the configuration (accounts: shop, news)" in done.stderr


def test_an_admin_token_is_listed_as_admin(served):
    token = bouncefilter(served, "token", "create", "--admin").stdout.strip()
    line = next(line for line in bouncefilter(served, "token", "list").stdout.splitlines()
                if line.startswith(token[3:11]))
    assert line.split("\t")[1] == "(admin)"


def test_bouncefilter_api_serves_until_sigterm_then_exits_0(served):
    port = free_port()
    argv = [sys.executable, "-m", "bouncefilter", "api", "--listen", f"127.0.0.1:{port}"]
    with process(argv, port, served) as child:
        rows = fetch(f"http://127.0.0.1:{port}{WINDOW}", served.tokens["shop"]).json()
        assert rows and all(row["account"] == "shop" for row in rows)  # type: ignore[index, union-attr]
        child.send_signal(signal.SIGTERM)
        assert child.wait(30) == 0
        err = child.communicate()[1]
        assert "listening on http://127.0.0.1:" in err
        assert f"stopped on SIGTERM; no longer listening on 127.0.0.1:{port}" in err


def test_bouncefilter_api_refuses_a_bad_listen_address(served):
    done = bouncefilter(served, "api", "--listen", "localhost")
    assert done.returncode == 2 and "expected HOST:PORT" in done.stderr


def test_gunicorn_loads_the_application_from_the_environments_configuration(served):
    pytest.importorskip("gunicorn")
    port = free_port()
    argv = [sys.executable, "-m", "gunicorn", "--bind", f"127.0.0.1:{port}", "--worker-class", "gthread",
            "--threads", "4", "bouncefilter.api.app:application"]
    with process(argv, port, served):
        rows = fetch(f"http://127.0.0.1:{port}{WINDOW}?format=jsonl", served.tokens["news"]).body.splitlines()
        assert len(rows) == 2 and all(b'"account":"news"' in row for row in rows)
        assert fetch(f"http://127.0.0.1:{port}/nowhere").status == 404


def test_the_api_unit_is_hardened_as_the_milters():
    directory = ROOT / "contrib" / "systemd"
    milter = (directory / "bouncefilter-milter.service").read_text().partition("# Hardening")[2]
    api = (directory / "bouncefilter-api.service").read_text()
    settings = [line for line in milter.splitlines() if line and not line.startswith(("#", "[", "WantedBy"))]
    assert settings and all(line in api.splitlines() for line in settings)
    assert "bouncefilter.api.app:application" in api and "--access-logfile" not in api.partition("ExecStart")[2]


@pytest.mark.parametrize(("text", "key"), [
    ("api: {listen: 8025}\n", "api.listen"),
    ("api: {listen: 'localhost:99999'}\n", "api.listen"),
    ("api: {max_window_days: 0}\n", "api.max_window_days"),
    ("api: {max_window: 10}\n", "api.max_window"),
])
def test_a_bad_api_setting_names_its_key(config_file, text, key):
    from bouncefilter import config

    with pytest.raises(config.ConfigError) as caught:
        config.load(str(config_file(text)))
    assert caught.value.key == key
