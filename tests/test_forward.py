"""Forwarding: the outbox handed on to real SMTP and web hook receivers on loopback.

Rows are queued by the real pipe code (:func:`bouncefilter.pipe.delivery.deliver`); the
forwarder runs in-process (``Forwarder.run_once`` with a clock the test moves, so
retries come in test time) or as the real ``bouncefilter forward`` command.
"""

from __future__ import annotations

import base64
import re
import signal
import ssl
import subprocess
import threading
import time
from email import message_from_bytes
from pathlib import Path

import pytest
import trustme

from bouncefilter import config, store
from bouncefilter.api import tokens
from bouncefilter.forward import webhook
from bouncefilter.pipe import command, delivery

import messages
from api_data import Served, fetch, serving
from support.forward_lab import KEY, OLD_SECRET, SECRET, Hooks, Mailbox, Site, free_port, hook, make_site, signature_ok

ROOT = Path(__file__).resolve().parent.parent


class Clock:
    """A clock the test moves."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


def wait_for(predicate, timeout: float = 30, step: float = 0.05) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(step)


# -- what the pipe queues -----------------------------------------------------------------


def test_the_pipe_queues_one_row_per_target_that_wants_the_kind(tmp_path):
    site = make_site(tmp_path, "{type: smtp, to: a@example.com}, " + hook("http://127.0.0.1:9/all",
                     ", kinds: [bounce, delay]"))
    site.bounce()
    site.bounce("slow@example.org", status="4.2.2")
    rows = site.outbox()
    assert [(r["bounce_id"], r["target"], r["state"]) for r in rows] == [
        (1, "shop:smtp:a@example.com", "pending"),
        (1, "shop:webhook:http://127.0.0.1:9/all", "pending"),
        (2, "shop:webhook:http://127.0.0.1:9/all", "pending"),  # delay: only where asked for
    ]
    assert all(r["queued_at"] == r["due_at"] > 0 for r in rows)


def test_forged_and_tokenless_mail_is_never_forwarded(tmp_path):
    site = make_site(tmp_path, "{type: smtp, to: a@example.com, kinds: [bounce, reply, unknown]}")
    forged = messages.token(key=messages.OTHER_KEY)
    raw = messages.postfix_dsn(forged)
    delivery.deliver(site.settings, command.Arguments("", messages.address(forged), ""), raw, len(raw), False)
    raw = messages.postfix_dsn("")
    delivery.deliver(site.settings, command.Arguments("", f"postmaster@{messages.DOMAIN}", ""), raw, len(raw), False)
    conn = site.conn()
    assert {row["outcome"] for row in store.bounces(conn)} == {"forged", "notoken"}
    assert site.outbox() == []


# -- SMTP -----------------------------------------------------------------------------------


def test_smtp_forwards_the_raw_bounce_with_a_null_sender_and_our_headers_on_top(tmp_path):
    with Mailbox() as box:
        site = make_site(tmp_path, "{type: smtp, to: team@example.com}, {type: smtp, to: return_path}", port=box.port)
        raw = site.bounce(bounce_address="bounces@shop.example.com")
        counts = site.forwarder().run_once()
        assert (counts.delivered, counts.retried, counts.dead) == (2, 0, 0)
        wait_for(lambda: len(box.envelopes) == 2)
    by_rcpt = {tuple(e.rcpt_tos): e for e in box.envelopes}
    assert set(by_rcpt) == {("team@example.com",), ("bounces@shop.example.com",)}
    for envelope in box.envelopes:
        assert envelope.mail_from == "<>"  # aiosmtpd's way of saying MAIL FROM:<>
        content = envelope.original_content
        added, _, rest = content.partition(b"Return-Path: <>\r\n")
        assert b"Return-Path: <>\r\n" + rest == raw.replace(b"\n", b"\r\n")  # below our fields, the bounce
        fields = message_from_bytes(added + b"\r\n")
        assert dict(fields) == {
            "X-Bouncefilter-Kind": "bounce", "X-Bouncefilter-Reason": "userunknown",
            "X-Bouncefilter-Recipient": "nobody@example.net", "X-Bouncefilter-Status": "5.1.1",
            "X-Bouncefilter-Hard": "yes", "X-Bouncefilter-Message-ID": "<order-1@shop.example.com>",
        }
    assert {r["state"] for r in site.outbox()} == {"done"}


def test_return_path_falls_back_to_the_original_envelope_sender(tmp_path):
    with Mailbox() as box:
        site = make_site(tmp_path, "{type: smtp, to: return_path}", port=box.port)
        site.bounce()
        site.forwarder().run_once()
        wait_for(lambda: len(box.envelopes) == 1)
    assert box.envelopes[0].rcpt_tos == ["orders@shop.example.com"]


def test_smtp_5xx_is_given_up_at_once_and_4xx_retried(tmp_path):
    with Mailbox() as box:
        site = make_site(tmp_path, "{type: smtp, to: reject@example.com}, {type: smtp, to: defer@example.com}",
                         port=box.port)
        site.bounce()
        clock = Clock()
        counts = site.forwarder(clock).run_once()
        assert (counts.delivered, counts.retried, counts.dead) == (0, 1, 1)
    rows = {r["target"]: r for r in site.outbox()}
    dead, later = rows["shop:smtp:reject@example.com"], rows["shop:smtp:defer@example.com"]
    assert dead["state"] == "dead" and dead["last_error"].startswith("SMTP 550 5.1.1 No such user here")
    assert later["state"] == "pending" and later["last_error"].startswith("SMTP 451")
    assert clock.now + 0.2 * 0.75 <= later["due_at"] <= clock.now + 0.2 * 1.25


def test_an_smtp_relay_that_refuses_connections_is_retried(tmp_path):
    site = make_site(tmp_path, "{type: smtp, to: team@example.com}", port=free_port())
    site.bounce()
    site.bounce("other@example.net")
    counts = site.forwarder().run_once()
    assert (counts.delivered, counts.retried, counts.dead) == (0, 2, 0)
    first, second = site.outbox()
    assert first["last_error"].startswith("ConnectionRefusedError") and first["attempts"] == 1
    assert second["last_error"].startswith("not tried: ConnectionRefusedError") and second["attempts"] == 0


@pytest.fixture
def tls(tmp_path, monkeypatch) -> tuple[ssl.SSLContext, trustme.CA]:
    """A server context with a certificate for localhost and 127.0.0.1 from a test CA
    that the forwarder trusts (``SSL_CERT_FILE``, read by ``ssl.create_default_context``)."""
    authority = trustme.CA()
    bundle = tmp_path / "ca.pem"
    authority.cert_pem.write_to_path(str(bundle))
    monkeypatch.setenv("SSL_CERT_FILE", str(bundle))
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    authority.issue_cert("localhost", "127.0.0.1").configure_cert(server)
    return server, authority


def test_smtp_says_starttls_and_logs_in_when_configured(tmp_path, tls):
    with Mailbox(tls=tls[0], login=("bouncefilter", "s3cret")) as box:
        site = make_site(tmp_path, "{type: smtp, to: team@example.com}", port=box.port,
                         smtp=", starttls: true, username: bouncefilter, password: s3cret")
        site.bounce()
        assert site.forwarder().run_once().delivered == 1
        wait_for(lambda: len(box.envelopes) == 1)
    assert box.logins == ["bouncefilter"]
    assert box.envelopes[0].rcpt_tos == ["team@example.com"]


def test_a_wrong_smtp_password_is_given_up_at_once(tmp_path, tls):
    with Mailbox(tls=tls[0], login=("bouncefilter", "s3cret")) as box:
        site = make_site(tmp_path, "{type: smtp, to: team@example.com}", port=box.port,
                         smtp=", starttls: true, username: bouncefilter, password: wrong")
        site.bounce()
        assert site.forwarder().run_once().dead == 1
    assert site.outbox()[0]["last_error"].startswith("SMTP 535")
    assert box.envelopes == []


# -- web hooks --------------------------------------------------------------------------------


def test_a_web_hook_event_is_signed_by_every_secret_and_carries_the_record(tmp_path):
    with Hooks([KEY]) as hooks:
        site = make_site(tmp_path, hook(hooks.url("/events")))
        site.bounce(bounce_address="bounces@shop.example.com")
        assert site.forwarder().run_once().delivered == 1
    (request,) = hooks.received
    assert request.verified
    assert len(request.headers["webhook-signature"].split(" ")) == 2
    assert signature_ok([OLD_SECRET.encode()], request.headers, request.body, time.time())  # either secret
    assert request.headers["content-type"] == "application/json"
    event = request.event
    assert event["event_id"] == request.headers["webhook-id"] and event["event_id"].startswith("evt_")
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", str(event["time"]))
    assert {k: event[k] for k in ("event", "id", "account", "recipient", "kind", "reason", "hard", "status",
                                  "replycode", "message_id", "envelope", "bounce_address", "outcome")} == {
        "event": "bounce", "id": 1, "account": "shop", "recipient": "nobody@example.net", "kind": "bounce",
        "reason": "userunknown", "hard": True, "status": "5.1.1", "replycode": "550",
        "message_id": "<order-1@shop.example.com>", "envelope": "orders@shop.example.com",
        "bounce_address": "bounces@shop.example.com", "outcome": "bounce",
    }
    assert set(event) >= {"timestamp", "diagnostic", "reporting_mta", "remote_mta", "feedback_type", "subject"}


def test_a_web_hook_event_carries_the_download_apis_record_of_the_row(tmp_path):
    with Hooks([KEY]) as hooks:
        site = make_site(tmp_path, hook(hooks.url("/events")))
        site.bounce(bounce_address="bounces@shop.example.com")
        assert site.forwarder().run_once().delivered == 1
    event = hooks.received[0].event
    conn = site.conn()
    token = tokens.create(conn, "shop", time.time())
    conn.close()
    day = float(event["timestamp"]) // 86400 * 86400  # type: ignore[arg-type]
    window = "/".join(time.strftime("%Y-%m-%d", time.gmtime(day + n)) for n in (0, 86400))
    with serving(Served("", site.settings.database, str(site.config)), clock=time.time()) as served:
        reply = fetch(f"{served.url}/v1/bounces/{window}", token)
    assert reply.status == 200, reply.body
    (record,) = reply.json()  # type: ignore[misc]
    assert list(event)[:2] == ["event_id", "event"] and event["event"] == record["outcome"]
    assert list(event.items())[2:] == list(record.items())
    assert record["envelope"] == "orders@shop.example.com"  # the sender the milter saw, not our VERP address


def test_https_web_hooks_check_the_certificate(tmp_path, tls, monkeypatch):
    with Hooks([KEY], tls=tls[0]) as hooks:
        site = make_site(tmp_path, hook(hooks.url("/events")))
        site.bounce()
        assert site.forwarder().run_once().delivered == 1
        assert hooks.received[0].verified
        site.bounce("other@example.net")
        monkeypatch.setenv("SSL_CERT_FILE", str(tmp_path / "nothing.pem"))  # the test CA no longer trusted
        assert site.forwarder().run_once().retried == 1
    assert "CERTIFICATE_VERIFY_FAILED" in site.outbox()[1]["last_error"]
    assert len(hooks.received) == 1


def test_the_signature_matches_the_standard_webhooks_example():
    # The example in the Standard Webhooks specification's README.
    key = config.secret_key("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
    assert webhook.signature(key, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, b'{"test": 2432232314}') == \
        "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def test_500_twice_then_200_is_delivered_on_the_third_try_with_one_event_id(tmp_path):
    with Hooks([KEY], scripts={"/flaky": [500, 500, 200]}) as hooks:
        site = make_site(tmp_path, hook(hooks.url("/flaky")))
        site.bounce()
        forwarder = site.command()
        with subprocess.Popen(forwarder, stderr=subprocess.PIPE) as service:
            try:
                wait_for(lambda: hooks.delivered("/flaky"), timeout=20)
                wait_for(lambda: site.outbox()[0]["state"] == "done", timeout=5)
            finally:
                service.send_signal(signal.SIGTERM)
                assert service.wait(10) == 0
    assert [r.status for r in hooks.received] == [500, 500, 200]
    assert len({r.headers["webhook-id"] for r in hooks.received}) == 1
    assert len({r.body for r in hooks.received}) == 1  # the same event each time
    assert all(r.verified for r in hooks.received)
    assert site.outbox()[0]["attempts"] == 3


def test_410_is_given_up_at_once_listed_and_can_be_retried(tmp_path):
    with Hooks([KEY], scripts={"/gone": [410]}) as hooks:
        site = make_site(tmp_path, hook(hooks.url("/gone")))
        site.bounce()
        assert site.forwarder().run_once().dead == 1
        (row,) = site.outbox()
        assert (row["state"], row["attempts"]) == ("dead", 1) and row["last_error"].startswith("HTTP 410 Gone")
        listed = subprocess.run(site.command("--list-dead"), capture_output=True, text=True, check=True).stdout
        assert listed.startswith(f"{row['id']}\tshop:webhook:{hooks.url('/gone')}\tattempts=1\tbounce=1\tbounce ")
        retried = subprocess.run(site.command("--retry", "all"), capture_output=True, text=True)
        assert (retried.returncode, retried.stdout) == (0, "1 dead rows pending again\n")
        assert site.outbox()[0]["state"] == "pending" and site.outbox()[0]["attempts"] == 0
        assert subprocess.run(site.command("--once"), capture_output=True).returncode == 0
        assert len(hooks.received) == 2 and site.outbox()[0]["state"] == "dead"
        missing = subprocess.run(site.command("--retry", "999"), capture_output=True, text=True)
        assert missing.returncode == 1 and "no dead outbox row with id 999" in missing.stderr
        bad = subprocess.run(site.command("--retry", "some"), capture_output=True, text=True)
        assert bad.returncode == 2 and "expected a row id or all" in bad.stderr


def test_a_stalled_receiver_times_out_is_retried_and_costs_one_timeout_per_batch(tmp_path):
    with Hooks([KEY], stall=3) as hooks:
        site = make_site(tmp_path, hook(hooks.url("/stall")))
        for n in range(5):
            site.bounce(f"user{n}@example.net")
        clock = Clock()
        started = time.monotonic()
        counts = site.forwarder(clock).run_once()
        took = time.monotonic() - started
        assert (counts.delivered, counts.retried) == (0, 5)
        assert 0.9 < took < 3.5  # one timeout (1 s), not five
        rows = site.outbox()
        assert rows[0]["last_error"] == "timed out" and rows[1]["last_error"] == "not tried: timed out"
        assert len({r["due_at"] for r in rows}) == 1
        hooks.stall = 0
        clock.now += 5
        assert site.forwarder(clock).run_once().delivered == 5
    assert len({r.headers["webhook-id"] for r in hooks.delivered("/stall")}) == 5


def test_a_receiver_that_answers_a_byte_at_a_time_is_cut_off_at_the_timeout(tmp_path):
    with Hooks([KEY], trickle=0.2) as hooks:  # its answer would take 9 s
        site = make_site(tmp_path, hook(hooks.url("/trickle")))
        site.bounce()
        started = time.monotonic()
        counts = site.forwarder(Clock()).run_once()
        took = time.monotonic() - started
    assert counts.retried == 1 and 0.9 < took < 2.5  # the whole attempt, not each read: 1 s
    assert site.outbox()[0]["last_error"] == "timed out"


def test_a_slow_target_never_delays_another(tmp_path):
    with Hooks([KEY], delays={"/slow": 0.8}) as hooks:
        site = make_site(tmp_path, hook(hooks.url("/slow")) + ", " + hook(hooks.url("/fast")), forward="timeout: 2, lease: 5")
        for n in range(4):
            site.bounce(f"user{n}@example.net")
        started = time.monotonic()
        counts = site.forwarder(Clock()).run_once()
        fast = [r.at - started for r in hooks.delivered("/fast")]
        slow = [r.at - started for r in hooks.delivered("/slow")]
    assert counts.delivered == 8 and len(fast) == 4 and len(slow) == 4
    assert max(fast) < 0.5 < 2.0 < max(slow)  # one at a time, the slow one takes 3.2 s; the fast one is done at once


def test_a_second_forwarder_finds_the_rows_of_a_trickling_receiver_still_claimed(tmp_path):
    with Hooks([KEY], trickle=0.2) as hooks:
        site = make_site(tmp_path, hook(hooks.url("/trickle")), forward="timeout: 1, lease: 2")
        for n in range(3):
            site.bounce(f"user{n}@example.net")
        first = threading.Thread(target=lambda: site.forwarder(Clock()).run_once())
        first.start()
        time.sleep(0.3)
        second = site.forwarder(Clock()).run_once()  # finds the rows claimed, the lease alive
        first.join()
        ids = [r.headers["webhook-id"] for r in hooks.received]
    assert (second.delivered, second.retried, second.dead) == (0, 0, 0)
    assert len(ids) == len(set(ids)) == 1  # the first row, cut off at the timeout; the rest put back untried


def test_the_claims_are_renewed_while_a_batch_takes_longer_than_the_lease(tmp_path):
    with Hooks([KEY], delays={"/slow": 0.8}) as hooks:
        site = make_site(tmp_path, hook(hooks.url("/slow")), forward="timeout: 1, lease: 2")
        for n in range(5):
            site.bounce(f"user{n}@example.net")  # 4 s of work for one forwarder, twice the lease
        first = threading.Thread(target=lambda: site.forwarder().run_once())
        first.start()
        time.sleep(2.5)  # past the lease the batch was claimed with
        second = site.forwarder().run_once()
        first.join()
        ids = [r.headers["webhook-id"] for r in hooks.received]
    assert (second.delivered, second.retried, second.dead) == (0, 0, 0)
    assert len(ids) == len(set(ids)) == 5


def test_a_long_2xx_answer_never_leaves_the_next_request_a_broken_connection(tmp_path):
    with Hooks([KEY], big=100_000) as hooks:
        site = make_site(tmp_path, hook(hooks.url("/big")))
        for n in range(3):
            site.bounce(f"user{n}@example.net")
        counts = site.forwarder(Clock()).run_once()
        ids = [r.headers["webhook-id"] for r in hooks.received]
    assert counts.delivered == 3 and len(ids) == len(set(ids)) == 3
    assert {row["state"] for row in site.outbox()} == {"done"}


def test_sigterm_ends_an_attempt_in_flight_at_once(tmp_path):
    with Hooks([KEY], stall=30) as hooks:
        site = make_site(tmp_path, hook(hooks.url("/stall")), forward="timeout: 20, lease: 60")
        site.bounce()
        service = subprocess.Popen(site.command(), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        time.sleep(1.5)  # started, claimed the row, and waiting for the stalled receiver
        asked = time.monotonic()
        service.send_signal(signal.SIGTERM)
        service.wait(timeout=10)
        took = time.monotonic() - asked
    assert service.returncode == 0 and took < 5  # the stalled receiver would hold it 30 s
    (row,) = site.outbox()
    assert (row["state"], row["last_error"]) == ("pending", "forwarder stopping")


def test_a_refused_connection_is_retried_until_max_age_then_dead(tmp_path):
    site = make_site(tmp_path, hook(f"http://127.0.0.1:{free_port()}/down"), forward="max_age: 10")
    site.bounce()
    clock = Clock()
    forwarder = site.forwarder(clock)
    assert forwarder.run_once().retried == 1
    assert site.outbox()[0]["last_error"].startswith("ConnectionRefusedError")
    attempts = 1
    while site.outbox()[0]["state"] == "pending":
        clock.now = site.outbox()[0]["due_at"]
        forwarder.run_once()
        attempts += 1
    row = site.outbox()[0]
    assert row["state"] == "dead" and row["last_error"].startswith(f"gave up after {attempts} attempts")
    assert row["attempts"] == attempts > 5  # retry_max 1 s within max_age 10 s


def test_rows_past_max_age_behind_an_unreachable_target_are_given_up_without_a_try_each(tmp_path):
    site = make_site(tmp_path, hook(f"http://127.0.0.1:{free_port()}/down"), forward="max_age: 10")
    fill(site, 3)
    clock = Clock()
    clock.now += 11
    counts = site.forwarder(clock).run_once()
    assert (counts.delivered, counts.retried, counts.dead) == (0, 0, 3)
    assert [r["attempts"] for r in site.outbox()] == [1, 0, 0]
    assert all(r["last_error"].startswith("gave up after") for r in site.outbox())


def test_429_honours_retry_after(tmp_path):
    with Hooks([KEY], scripts={"/busy": [429, 200]}, retry_after="120") as hooks:
        site = make_site(tmp_path, hook(hooks.url("/busy")))
        site.bounce()
        clock = Clock()
        assert site.forwarder(clock).run_once().retried == 1
        assert site.outbox()[0]["due_at"] == pytest.approx(clock.now + 120)
        clock.now += 60
        assert site.forwarder(clock).run_once().delivered == 0
        clock.now += 61
        assert site.forwarder(clock).run_once().delivered == 1


def test_the_backoff_doubles_with_jitter_and_stops_at_retry_max(tmp_path):
    site = make_site(tmp_path, "{type: smtp, to: a@example.com}", forward="retry_max: 3")
    forwarder = site.forwarder()
    delays = [forwarder.backoff(n) for n in range(1, 7)]
    for n, delay in enumerate(delays[:4]):
        assert 0.75 * min(0.2 * 2 ** n, 3) <= delay <= 1.25 * min(0.2 * 2 ** n, 3)
    assert all(delay <= 3.75 for delay in delays)
    assert len({round(forwarder.backoff(1), 6) for _ in range(20)}) > 10  # jitter


# -- crashes, several forwarders, the pipe's independence ---------------------------------------


def fill(site: Site, count: int) -> None:
    for n in range(count):
        site.bounce(f"user{n}@example.net")


def test_a_forwarder_killed_mid_stream_loses_nothing_and_sends_at_most_one_twice(tmp_path):
    with Hooks([KEY], delay=0.002) as hooks:
        # A request that outlived the timeout would be sent again, rightly (at least once):
        # on a loaded machine the 1 s of the other tests is too short for "at most one twice".
        site = make_site(tmp_path, hook(hooks.url("/events")), forward="timeout: 10, lease: 20")
        fill(site, 500)
        with subprocess.Popen(site.command(), stderr=subprocess.DEVNULL) as first:
            wait_for(lambda: len(hooks.received) >= 150, timeout=60, step=0.01)
            first.kill()  # SIGKILL
        states = {r["state"] for r in site.outbox()}
        assert "sending" in states  # it died holding a claimed batch
        with subprocess.Popen(site.command(), stderr=subprocess.DEVNULL) as second:
            try:
                wait_for(lambda: {r["state"] for r in site.outbox()} == {"done"}, timeout=60)
            finally:
                second.send_signal(signal.SIGTERM)
                second.wait(10)
    ids = [r.headers["webhook-id"] for r in hooks.received]
    assert len(set(ids)) == 500
    assert len(ids) - len(set(ids)) <= 1
    assert all(r.verified for r in hooks.received)


def test_several_forwarders_at_once_never_send_a_row_twice(tmp_path):
    with Hooks([KEY], delay=0.001) as hooks:
        site = make_site(tmp_path, hook(hooks.url("/events")), forward="batch: 20")
        fill(site, 300)
        runs = [subprocess.Popen(site.command("--once"), stderr=subprocess.DEVNULL) for _ in range(3)]
        assert [run.wait(60) for run in runs] == [0, 0, 0]
    ids = [r.headers["webhook-id"] for r in hooks.received]
    assert len(ids) == len(set(ids)) == 300


def test_a_receiver_down_for_long_never_slows_the_pipe(tmp_path):
    with Hooks([KEY], stall=10) as hooks:
        site = make_site(tmp_path, hook(hooks.url("/stall")), forward="timeout: 4, lease: 8")
        fill(site, 50)
        with subprocess.Popen(site.command(), stderr=subprocess.DEVNULL) as service:
            try:
                wait_for(lambda: hooks.received or any(r["state"] == "sending" for r in site.outbox()))
                took = []
                for n in range(20):
                    started = time.monotonic()
                    site.bounce(f"late{n}@example.net")
                    took.append(time.monotonic() - started)
            finally:
                service.send_signal(signal.SIGTERM)
                service.wait(20)
    # Holding the database while waiting for the receiver would cost a pipe up to 4 s.
    assert max(took) < 2.0, took
    assert len(site.outbox()) == 70


# -- the README's receiver example ------------------------------------------------------------


def readme_example() -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text[text.index("### Verifying a web hook"):]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_the_readme_example_verifies_a_real_request_and_rejects_a_forgery(tmp_path):
    with Hooks([KEY]) as hooks:
        site = make_site(tmp_path, hook(hooks.url("/events")))
        site.bounce()
        site.forwarder().run_once()
    (request,) = hooks.received
    scope: dict[str, object] = {}
    exec(compile(readme_example(), "README.md", "exec"), scope)  # noqa: S102 - our own README
    verify = scope["verify"]
    event = verify(SECRET, request.headers, request.body)
    assert event["event_id"] == request.headers["webhook-id"]
    assert verify(OLD_SECRET, request.headers, request.body)["id"] == 1
    for secret, headers, body in [
        (SECRET, request.headers, request.body.replace(b"nobody", b"nobodx")),
        ("whsec_" + base64.b64encode(b"another key, 24 octets long").decode(), request.headers, request.body),
        (SECRET, {**request.headers, "webhook-timestamp": str(int(time.time()) - 3600)}, request.body),
    ]:
        with pytest.raises(ValueError):
            verify(secret, headers, body)


# -- suppression events -------------------------------------------------------------------------

LISTING = "{hard_after: 1}"  # the default: one hard bounce lists the address


def lift(site: Site, address: str = "nobody@example.net") -> str:
    conn = site.conn()
    try:
        return store.suppressions.lift(conn, "shop", address, time.time(), "cli:tester", True,
                                       site.settings.suppression_targets("shop"))
    finally:
        conn.close()


def test_a_hard_bounce_gives_the_hook_a_bounce_and_a_signed_suppression_created_event(tmp_path):
    with Hooks([KEY]) as hooks:
        site = make_site(tmp_path, hook(hooks.url("/events")), suppression=LISTING)
        site.bounce()
        assert [(r["history_id"], r["state"]) for r in site.outbox("history_id")] == [(1, "pending")]
        assert site.forwarder().run_once().delivered == 2
    bounce, created = hooks.received
    assert bounce.verified and created.verified
    assert len(created.headers["webhook-signature"].split(" ")) == 2  # every secret signs this one too
    assert bounce.event["event"] == "bounce"
    event = created.event
    assert list(event)[:2] == ["event_id", "event"]
    assert event["event_id"] == created.headers["webhook-id"] != bounce.headers["webhook-id"]
    assert str(event["event_id"]).startswith("evt_")
    assert {k: v for k, v in event.items() if k not in ("event_id", "at")} == {
        "event": "suppression.created", "id": 1, "account": "shop", "address": "nobody@example.net",
        "reason": "hard", "detail": "userunknown", "until": None, "bounce_id": bounce.event["id"], "actor": "pipe",
    }
    assert abs(float(event["at"]) - time.time()) < 60  # type: ignore[arg-type]
    assert {r["state"] for r in site.outbox("history_id")} == {"done"}


def test_lifting_gives_the_hook_a_suppression_lifted_event(tmp_path):
    with Hooks([KEY]) as hooks:
        site = make_site(tmp_path, hook(hooks.url("/events")), suppression=LISTING)
        site.bounce()
        site.forwarder().run_once()
        assert lift(site) == "lifted"
        assert site.forwarder().run_once().delivered == 1
    lifted = hooks.received[-1]
    assert lifted.verified and len(hooks.received) == 3
    assert {k: lifted.event[k] for k in ("event", "id", "address", "reason", "actor", "bounce_id")} == {
        "event": "suppression.lifted", "id": 2, "address": "nobody@example.net", "reason": "hard",
        "actor": "cli:tester", "bounce_id": None,
    }


def test_an_smtp_target_gets_a_plain_notification_with_the_fields_as_headers(tmp_path):
    with Mailbox() as box:
        site = make_site(tmp_path, "{type: smtp, to: team@example.com}", port=box.port, suppression=LISTING)
        site.bounce()
        assert site.forwarder().run_once().delivered == 2
        wait_for(lambda: len(box.envelopes) == 2)
    notes = [e for e in box.envelopes if b"X-Bouncefilter-Event:" in e.original_content]
    (envelope,) = notes
    assert envelope.mail_from == "<>" and envelope.rcpt_tos == ["team@example.com"]
    note = message_from_bytes(envelope.original_content)
    assert {k: note[k] for k in ("X-Bouncefilter-Event", "X-Bouncefilter-Account", "X-Bouncefilter-Address",
                                 "X-Bouncefilter-Reason", "X-Bouncefilter-Detail", "X-Bouncefilter-Actor",
                                 "To", "Auto-Submitted")} == {
        "X-Bouncefilter-Event": "suppression.created", "X-Bouncefilter-Account": "shop",
        "X-Bouncefilter-Address": "nobody@example.net", "X-Bouncefilter-Reason": "hard",
        "X-Bouncefilter-Detail": "userunknown", "X-Bouncefilter-Actor": "pipe", "To": "team@example.com",
        "Auto-Submitted": "auto-generated",
    }
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", note["X-Bouncefilter-At"])
    assert note["X-Bouncefilter-Until"] is None  # until lifted: no such field
    assert note["From"] == f"bouncefilter <MAILER-DAEMON@{messages.DOMAIN}>"
    assert "nobody@example.net" in note["Subject"] and note.get_content_type() == "text/plain"
    text = note.get_payload(decode=True).decode()
    assert " ".join(text.split()).startswith("nobody@example.net is suppressed for the account shop until it is"
                                             " lifted: mail to it is no longer sent.")
    assert "reason: hard\n" in text.replace("\r\n", "\n")


def test_a_return_path_target_gets_the_listing_bounces_address_or_nothing(tmp_path, caplog):
    with Mailbox() as box:
        site = make_site(tmp_path, "{type: smtp, to: return_path}", port=box.port, suppression=LISTING)
        site.bounce(bounce_address="bounces@shop.example.com")
        conn = site.conn()
        assert store.suppressions.suppress(conn, "shop", "Typed@Example.ORG", "manual", time.time(), "cli:tester",
                                           targets=site.settings.suppression_targets("shop"))
        conn.close()
        with caplog.at_level("INFO", "bouncefilter.forward.forwarder"):
            assert site.forwarder().run_once().delivered == 3
        assert lift(site) == "lifted"  # the lifting of a bounce's listing goes where the listing went
        assert site.forwarder().run_once().delivered == 1
        wait_for(lambda: len(box.envelopes) == 3)
    events = sorted(message_from_bytes(e.original_content)["X-Bouncefilter-Event"] or "bounce" for e in box.envelopes)
    assert events == ["bounce", "suppression.created", "suppression.lifted"]
    assert {tuple(e.rcpt_tos) for e in box.envelopes} == {("bounces@shop.example.com",)}
    assert "done, not sent: no return path known for Typed@example.org" in caplog.text
    assert [r["state"] for r in site.outbox("history_id")] == ["done"] * 3


def test_a_target_with_suppressions_false_gets_no_suppression_event(tmp_path):
    with Hooks([KEY]) as hooks:
        site = make_site(tmp_path, hook(hooks.url("/all")) + ", " + hook(hooks.url("/bounces"), ", suppressions: false"),
                         suppression=LISTING)
        site.bounce()
        assert lift(site) == "lifted"
        assert site.forwarder().run_once().delivered == 4
    assert [r["target"] for r in site.outbox("history_id")] == [f"shop:webhook:{hooks.url('/all')}"] * 2
    assert [r.event["event"] for r in hooks.delivered("/bounces")] == ["bounce"]
    assert sorted(str(r.event["event"]) for r in hooks.delivered("/all")) == [
        "bounce", "suppression.created", "suppression.lifted"]


def test_a_refused_suppression_event_is_dead_listed_and_retried(tmp_path):
    with Hooks([KEY], scripts={"/gone": [410, 200]}) as hooks:
        site = make_site(tmp_path, hook(hooks.url("/gone")), suppression=LISTING)
        site.bounce()
        assert site.forwarder().run_once().dead == 2
        (row,) = site.outbox("history_id")
        assert row["state"] == "dead" and row["last_error"].startswith("HTTP 410")
        listed = subprocess.run(site.command("--list-dead"), capture_output=True, text=True, check=True).stdout
        assert f"{row['id']}\tshop:webhook:{hooks.url('/gone')}\tattempts=1\tsuppression=1\t" \
               "suppression.created <nobody@example.net>\tHTTP 410" in listed
        retried = subprocess.run(site.command("--retry", str(row["id"])), capture_output=True, text=True)
        assert (retried.returncode, retried.stdout) == (0, "1 dead rows pending again\n")
        assert site.forwarder().run_once().delivered == 1
    assert site.outbox("history_id")[0]["state"] == "done"
    assert [r.event["event"] for r in hooks.delivered("/gone")] == ["suppression.created"]


def test_retention_keeps_the_history_and_unsent_events_and_drops_old_sent_ones(tmp_path):
    site = make_site(tmp_path, hook("http://127.0.0.1:9/events"), suppression=LISTING)
    site.bounce(now=time.time() - 40 * 86400)
    assert lift(site) == "lifted"
    conn = site.conn()
    conn.execute("UPDATE outbox SET state = 'done' WHERE history_id = 1")
    conn.commit()
    purged = store.purge(conn, time.time(), days=30, raw_days=30)
    assert (purged.bounces, purged.events) == (1, 1)  # the old bounce and its sent listing event
    assert [(r["history_id"], r["state"]) for r in site.outbox("history_id")] == [(2, "pending")]
    assert [h["change"] for h in store.suppressions.history(conn, "shop", "nobody@example.net")] == [
        "created", "lifted"]
    assert store.purge(conn, time.time() + 40 * 86400, days=30, raw_days=30).events == 0  # pending: kept
    conn.close()
