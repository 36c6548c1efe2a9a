"""The milter protocol's wire format (bouncefilter.milter.wire) and the engine's context,
read from sessions captured between a real Postfix and the milter
(tests/fixtures/milter-sessions/, remade by tests/capture_milter_sessions.py).

The engine itself is tested over real sockets in test_milter.py (both engines) and
against a real Postfix in test_milter_postfix.py.
"""

from __future__ import annotations

import struct
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bouncefilter.milter import handler, wire
from bouncefilter.milter.engine import NO_REPLY_BITS, Context, tcp_address

#: Sessions recorded between a real Postfix 3.7 and ``bouncefilter milter`` (asyncio);
#: made by tests/capture_milter_sessions.py, whose docstring says how. Sendmail: not yet.
SESSIONS = Path(__file__).resolve().parent / "fixtures" / "milter-sessions"
_RECORD = struct.Struct("!cI")


def recorded(name: str) -> tuple[bytes, bytes]:
    """What the MTA wrote and what the milter wrote in session ``name``, each as one stream."""
    data = (SESSIONS / f"{name}.session").read_bytes()
    streams = {b">": b"", b"<": b""}
    pos = 0
    while pos < len(data):
        who, length = _RECORD.unpack_from(data, pos)
        streams[who] += data[pos + 5 : pos + 5 + length]
        pos += 5 + length
    return streams[b">"], streams[b"<"]


MTA_STREAM, MILTER_STREAM = recorded("postfix-tracked")
PACKETS = wire.Decoder().feed(MTA_STREAM)


def framed(body: bytes) -> bytes:
    """``body`` (command and data) behind its length: what :func:`wire.packet` must give."""
    return struct.pack("!I", len(body)) + body


def stream(packets: list[tuple[bytes, bytes]]) -> bytes:
    return b"".join(wire.packet(command, data) for command, data in packets)


def test_one_read_may_hold_many_packets():
    assert stream(PACKETS) == MTA_STREAM  # nothing left over, re-framed byte for byte
    assert len(PACKETS) == 31


@given(st.lists(st.integers(min_value=1, max_value=40), max_size=30))
def test_packets_come_out_whole_however_the_stream_is_cut(cuts):
    decoder = wire.Decoder()
    out, pos = [], 0
    for cut in cuts:
        out += decoder.feed(MTA_STREAM[pos : pos + cut])
        pos += cut
    out += decoder.feed(MTA_STREAM[pos:])
    assert out == PACKETS and decoder.pending == 0


def test_postfix_offers_everything_and_gets_only_what_the_milter_uses():
    assert PACKETS[0][0] == wire.OPTNEG
    assert wire.parse_optneg(PACKETS[0][1]) == (6, 0x1FF, 0x1FFFFF)  # Postfix 3.7: all of version 6
    (reply, *_) = wire.Decoder().feed(MILTER_STREAM)
    version, actions, protocol = wire.parse_optneg(reply[1])
    assert (version, actions) == (6, handler.ACTIONS)
    quiet = [NO_REPLY_BITS[step] for step in (wire.MAIL, wire.RCPT, wire.HEADER)]
    assert all(protocol & bit for bit in quiet)  # no account lists an address: no reply before the end
    assert reply[1][12:] == struct.pack("!I", 2) + b"{auth_authen} i\0" + struct.pack("!I", 5) + b"i\0"


def test_postfix_sends_the_steps_and_macros_as_negotiated():
    commands = [command for command, _ in PACKETS]
    assert commands.count(wire.RCPT) == 2 and commands.count(wire.HEADER) == 8
    assert wire.CONNECT not in commands and wire.HELO not in commands and wire.BODY not in commands
    assert commands[-4:] == [wire.BODYEOB, wire.ABORT, wire.ABORT, wire.QUIT]  # Postfix's farewell
    macros = [wire.macro_stage(data) for command, data in PACKETS if command == wire.MACRO]
    # At MAIL FROM only those asked for (no login, and no queue id yet); at the end the queue id.
    assert (wire.MAIL, b"") in macros
    eom = wire.macro_values(dict(macros)[wire.BODYEOB])
    assert list(eom) == ["i"] and len(eom["i"]) >= 10
    # At the stages the milter named none, Postfix sends its milter_*_macros all the same.
    connect = wire.macro_values(dict(macros)[wire.CONNECT])
    assert {"j", "{daemon_name}", "v"} <= set(connect)
    headers = [wire.strings(data)[0] for command, data in PACKETS if command == wire.HEADER]
    assert headers[0] == b"Return-Path"  # kept for the milter by contrib/postfix's submission setup


def test_the_milter_changed_the_tracked_message_and_left_the_bounce_alone():
    commands = [command for command, _ in wire.Decoder().feed(MILTER_STREAM)]
    assert commands == [wire.OPTNEG, wire.CHGFROM, wire.ADDHEADER, wire.CHGHEADER, b"c"]
    mta, milter = recorded("postfix-bounce")
    assert (wire.MAIL, b"<>\0") in wire.Decoder().feed(mta)
    assert [command for command, _ in wire.Decoder().feed(milter)] == [wire.OPTNEG, b"c"]


@pytest.mark.parametrize("length", [0, wire.MAX_PACKET + 1])
def test_an_impossible_length_is_a_protocol_error(length):
    with pytest.raises(wire.ProtocolError, match="packet length"):
        wire.Decoder().feed(struct.pack("!I", length) + b"M")


def test_macros_are_read_by_name_for_their_stage():
    stage, rest = wire.macro_stage(b"E" + b"i\0" + b"4ABC\0" + b"{auth_authen}\0" + b"news-mailer\0")
    assert stage == wire.BODYEOB
    assert wire.macro_values(rest) == {"i": "4ABC", "{auth_authen}": "news-mailer"}
    assert wire.macro_values(b"") == {}


def test_an_empty_macro_packet_is_a_protocol_error():
    with pytest.raises(wire.ProtocolError, match="empty macro packet"):
        wire.macro_stage(b"")


def test_strings_forgive_a_missing_last_nul():
    assert wire.strings(b"<a@example.com>\0SIZE=1\0") == [b"<a@example.com>", b"SIZE=1"]
    assert wire.strings(b"<a@example.com>") == [b"<a@example.com>"]
    assert wire.strings(b"Subject\0\0") == [b"Subject", b""]


def test_the_replies_bouncefilter_sends_are_what_libmilter_sends():
    assert wire.chgfrom("<b+t@bounces.example.com>", "ENVID=t") == framed(b"e<b+t@bounces.example.com>\0ENVID=t\0")
    assert wire.chgfrom("<a@example.com>", None) == framed(b"e<a@example.com>\0")
    assert wire.addheader("X-Bouncefilter-Token", "t") == framed(b"hX-Bouncefilter-Token\0t\0")
    assert wire.chgheader("Return-Path", 2, None) == framed(b"m" + struct.pack("!I", 2) + b"Return-Path\0\0")
    assert wire.replycode("451 4.3.0 later") == framed(b"y451 4.3.0 later\0")
    assert wire.optneg_reply(6, 0x51, 0x1F) == framed(b"O" + struct.pack("!III", 6, 0x51, 0x1F))
    assert wire.parse_optneg(struct.pack("!III", 6, 0x1FF, 0x1FFFFF)) == (6, 0x1FF, 0x1FFFFF)
    # An MTA that offers nothing is a version 1 MTA, as libmilter reads it.
    assert wire.parse_optneg(struct.pack("!III", 2, 0, 0)) == (2, wire.V1_ACTIONS, wire.V1_PROTOCOL) == (2, 0x0F, 0x3F)


def test_the_negotiation_reply_names_the_macros_wanted_by_stage():
    lists = {2: b"{auth_authen} i", 5: b"i"}
    assert wire.optneg_reply(6, 0x151, 0x1F, lists) == framed(
        b"O" + struct.pack("!III", 6, 0x151, 0x1F) + struct.pack("!I", 2) + b"{auth_authen} i\0" + struct.pack("!I", 5) + b"i\0"
    )


def test_a_macro_is_found_in_the_latest_stage_with_or_without_braces():
    context = Context()
    context.macros[wire.MAIL] = b"i\0EARLY\0{auth_authen}\0shop\0"  # as they came
    context.macros[wire.BODYEOB] = {"{i}": "4ABC"}  # already decoded
    assert context.getsymval("i") == "4ABC"
    assert context.getsymval("{auth_authen}") == "shop" and context.getsymval("auth_authen") == "shop"
    assert context.getsymval("{client_addr}") is None
    context.forget_message()
    assert context.getsymval("i") is None


def test_the_message_may_be_changed_only_at_its_end():
    context = Context()
    with pytest.raises(RuntimeError, match="end of message"):
        context.chgfrom("<b+t@bounces.example.com>")
    context.at_end = True
    context.chgfrom("<b+t@bounces.example.com>")
    context.addheader("X-Bouncefilter-Token", "t")
    context.addheader("X-First", "1", 0)
    assert [packet[4:5] for packet in context.modifications] == [wire.CHGFROM, wire.ADDHEADER, wire.INSHEADER]


@pytest.mark.parametrize(
    ("spec", "address"),
    [
        ("inet:8891@127.0.0.1", ("127.0.0.1", 8891)),
        ("inet:8891", ("0.0.0.0", 8891)),
        ("inet6:8891@[::1]", ("::1", 8891)),
        ("inet6:8891", ("::", 8891)),
    ],
)
def test_tcp_sockets_are_named_as_libmilter_names_them(spec, address):
    assert tcp_address(spec) == address
