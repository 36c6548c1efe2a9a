"""The Postfix lab itself, end to end: what its peers and its pipe receive from a real Postfix.

These tests pin down the facts the milter and pipe tests build on: the accepting peer
sees the envelope as sent, a 550 from the hard peer comes back as a Postfix DSN with a
null sender to the VERP address on the pipe transport, and the classifier reads that DSN.
"""

from __future__ import annotations

import smtplib
from pathlib import Path

import pytest

from bouncefilter.classify.pipeline import classify

from support.postfix_lab import BOUNCE_DOMAIN, CONTRIB_COMMAND, PostfixLab, contrib_main, contrib_master, make_message

pytestmark = pytest.mark.postfix

ALICE = "alice@sender.example.test"


def test_the_lab_runs_contribs_postfix_lines(lab: PostfixLab):
    # What Postfix itself reads from the lab's files: contrib's lines, with the lab's names.
    settings = lab.run(["postconf", "-c", str(lab.etc), "-n"]).stdout
    for name, value in contrib_main(lab.etc).items():
        assert f"{name} = {value}\n" in settings
    assert f"relay_domains = {BOUNCE_DOMAIN}\n" in settings
    assert f"transport_maps = texthash:{lab.etc}/bouncefilter-transport\n" in settings
    pipe = lab.run(["postconf", "-c", str(lab.etc), "-M", "bouncefilter/unix"]).stdout
    assert "flags=Rq user=nobody null_sender= argv=/usr/bin/python3 -S " in pipe
    assert pipe.rstrip().endswith("pipe --queue-id ${queue_id} ${sender} ${recipient}")
    submission = lab.run(["postconf", "-c", str(lab.etc), "-P", f"127.0.0.1:{lab.ports['submission']}/inet"]).stdout
    assert "cleanup_service_name = cleanup-bouncefilter" in submission
    assert "message_drop_headers = bcc,content-length,resent-bcc" in lab.run(
        ["postconf", "-c", str(lab.etc), "-P", "cleanup-bouncefilter/unix"]).stdout


def test_contribs_master_cf_takes_the_labs_names(tmp_path):
    services = contrib_master(tmp_path, submission="127.0.0.1:2525", milter="unix:/lab/milter.sock",
                              keep_return_path=False, pipe_user="nobody",
                              pipe_command=["/lab/bin/python", "-c", "import email.parser"])
    assert "argv=/lab/bin/python -c {import email.parser} pipe --queue-id" in services
    assert CONTRIB_COMMAND not in services and "user=bouncefilter" not in services
    assert "127.0.0.1:2525 inet n - n - - smtpd\n" in services
    assert "-o smtpd_milters=unix:/lab/milter.sock\n" in services
    assert "cleanup_service_name" not in services and "smtpd_tls" not in services and "sasl" not in services
    assert all(line.split()[4] == "n" for line in services.splitlines() if not line.startswith(" "))


def test_mail_to_an_accepting_peer_arrives_with_its_envelope(lab: PostfixLab):
    message = make_message(ALICE, "good@dest.example.test", "Envelope check")
    queue_id = lab.send(message, "envelope@sender.example.test", ["good@dest.example.test", "other@dest.example.test"])

    (saved,) = lab.wait_sink()
    assert queue_id
    assert saved.sender == "envelope@sender.example.test"
    assert saved.recipients == ("good@dest.example.test", "other@dest.example.test")
    assert b"Subject: Envelope check" in saved.message
    assert f"with ESMTP id {queue_id}".encode() in saved.message  # Postfix's own Received:


def test_a_hard_reject_comes_back_as_a_dsn_through_the_pipe_and_classifies(lab: PostfixLab):
    verp = f"b+lab1hard@{BOUNCE_DOMAIN}"
    message = make_message(ALICE, "bad@bad.example.test", "Hard bounce check")
    lab.send(message, verp, ["good@dest.example.test", "bad@bad.example.test"])

    (dsn,) = lab.wait_deliveries()
    assert dsn.sender == ""  # null_sender= in master.cf
    assert dsn.recipient == verp
    assert dsn.message.startswith(b"Return-Path: <>\n")
    assert b"Subject: Undelivered Mail Returned to Sender" in dsn.message
    verdict = classify(dsn.message)
    assert verdict.outcome == "bounce"
    (record,) = verdict.records
    assert (record.recipient, record.kind, record.reason, record.hard) == ("bad@bad.example.test", "bounce", "userunknown", True)
    assert (record.status, record.replycode) == ("5.1.1", "550")
    assert verdict.original.subject == "Hard bounce check"
    assert lab.wait_sink()[0].recipients == ("good@dest.example.test",)


def test_a_soft_reject_produces_a_delay_notice(lab: PostfixLab):
    # delay_warning_time = 1s in the lab: the first deferral already warns.
    verp = f"b+lab1soft@{BOUNCE_DOMAIN}"
    queue_id = lab.send(make_message(ALICE, "full@soft.example.test", "Soft bounce check"), verp, ["full@soft.example.test"])

    (notice,) = lab.wait_deliveries()
    assert (notice.sender, notice.recipient) == ("", verp)
    assert b"Subject: Delayed Mail (still being retried)" in notice.message
    (record,) = classify(notice.message).records
    assert (record.recipient, record.kind, record.hard, record.status) == ("full@soft.example.test", "delay", False, "4.2.2")
    assert queue_id in lab.queue()  # still being retried


def test_the_mx_port_hands_an_inbound_bounce_to_the_pipe_unchanged(lab: PostfixLab):
    verp = f"b+lab1inbound@{BOUNCE_DOMAIN}"
    message = make_message("MAILER-DAEMON@remote.example.net", verp, "Returned mail: see transcript")
    lab.send(message, "", [verp], port="mx")

    (delivery,) = lab.wait_deliveries()
    assert (delivery.sender, delivery.recipient) == ("", verp)
    assert b"Subject: Returned mail: see transcript" in delivery.message


@pytest.mark.parametrize("keep", [True, False])
def test_the_submission_port_keeps_a_return_path_header_only_when_configured(lab: PostfixLab, keep: bool):
    # With no milter to remove it, a kept header reaches the peer: proof that the
    # milter would see it. Postfix's default drops it in cleanup.
    lab.configure(keep_return_path=keep)
    message = make_message(ALICE, "good@dest.example.test", headers=[("Return-Path", "<owner@sender.example.test>")])
    lab.send(message, ALICE, ["good@dest.example.test"])

    (saved,) = lab.wait_sink()
    assert (b"Return-Path: <owner@sender.example.test>" in saved.message) is keep


@pytest.mark.parametrize("action", ["accept", "tempfail"])
def test_an_unreachable_milter_follows_milter_default_action_on_submission_only(lab: PostfixLab, action: str):
    # accept is contrib/postfix/main.cf's (paired with milter.on_error: accept).
    lab.configure(milter=f"unix:{lab.run_dir}/missing.sock", main={"milter_default_action": action})
    message = make_message(ALICE, "good@dest.example.test")

    if action == "tempfail":
        with pytest.raises(smtplib.SMTPSenderRefused) as refused:
            lab.send(message, ALICE, ["good@dest.example.test"])
        assert refused.value.smtp_code == 451
    else:
        lab.send(message, ALICE, ["good@dest.example.test"])
        assert lab.wait_sink()[0].sender == ALICE
    lab.send(message, ALICE, ["good@dest.example.test"], port="mx")
    assert lab.wait_sink(count=2 if action == "accept" else 1)[-1].sender == ALICE


@pytest.mark.parametrize(("address", "verdict"), [
    ("b+{token}@bounces.example.com", "DUNNO"),
    ("B+{TOKEN}@Bounces.Example.COM", "DUNNO"),  # Postfix's regexp tables ignore case
    ("postmaster@bounces.example.com", "DUNNO"),
    ("abuse@bounces.example.com", "DUNNO"),
    ("info@bounces.example.com", "550 5.1.1"),
    ("b+short@bounces.example.com", "550 5.1.1"),
    ("b+{token}x@bounces.example.com", "550 5.1.1"),
    ("alice@sender.example.test", ""),  # not the bounce domain: not this table's business
])
def test_contribs_recipient_table_takes_only_verp_addresses_and_role_accounts(lab: PostfixLab, address, verdict):
    import messages

    token = messages.token()
    table = Path(__file__).resolve().parent.parent / "contrib" / "postfix" / "bouncefilter-recipients.regexp"
    done = lab.run(["postmap", "-c", str(lab.etc), "-q", address.format(token=token, TOKEN=token.upper()),
                    f"regexp:{table}"], check=False)
    assert done.stdout.strip().startswith(verdict) and bool(done.stdout.strip()) == bool(verdict)
