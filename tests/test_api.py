"""The download API, served for real on loopback and asked with urllib: windows,
formats, filters, paging, errors, tokens and the wall between accounts."""

from __future__ import annotations

import base64
import csv
import io
import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from bouncefilter import store
from bouncefilter.api import app as api
from bouncefilter.api import query, tokens

from api_data import DAY0, ROWS, SENT, Served, fetch, seed, serving

FIELDS = ["id", "time", "timestamp", "account", "recipient", "kind", "reason", "hard", "status", "replycode",
          "diagnostic", "reporting_mta", "remote_mta", "feedback_type", "message_id", "subject", "envelope",
          "bounce_address", "outcome", "truncated"]
WINDOW = "/v1/bounces/2026-11-01/2026-11-04"


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    with serving(seed(tmp_path_factory.mktemp("api"))) as served:
        yield served


def recipients(rows: object) -> list[str]:
    return [row["recipient"] for row in rows]  # type: ignore[index, union-attr]


def expected(account: str | None, since: float = DAY0, until: float = DAY0 + 3 * 86400) -> list[str]:
    """The recipients of ``account``'s rows (every row for ``None``) in the window, oldest first."""
    rows = sorted((offset, recipient) for owner, _, _, recipient, _, _, offset in ROWS
                  if (account is None or owner == account) and since <= DAY0 + offset < until)
    return [recipient for _, recipient in rows]


# -- records ---------------------------------------------------------------------------------


def test_an_account_gets_its_own_records_oldest_first_with_every_field(app):
    reply = fetch(app.url + WINDOW, app.tokens["shop"])
    assert reply.status == 200 and reply.headers["content-type"] == "application/json"
    rows = reply.json()
    assert recipients(rows) == expected("shop")
    assert all(list(row) == FIELDS for row in rows)
    first = rows[0]
    assert first["time"] == "2026-11-01T10:00:00Z" and first["timestamp"] == DAY0 + 36000
    assert (first["account"], first["kind"], first["reason"], first["hard"], first["status"]) == (
        "shop", "bounce", "userunknown", True, "5.1.1")
    assert first["id"] == app.ids["a1@example.net"] and first["outcome"] == "bounce"


def test_the_window_is_half_open(app):
    """A record received at exactly the end belongs to the next window."""
    before = fetch(app.url + "/v1/bounces/2026-11-01/2026-11-03", app.tokens["shop"]).json()
    after = fetch(app.url + "/v1/bounces/2026-11-03/2026-11-04", app.tokens["shop"]).json()
    assert "e1@Example.COM" not in recipients(before)
    assert recipients(after) == ["e1@Example.COM"]


def test_rfc_3339_times_with_any_offset(app):
    # 2026-11-01T12:00:00+02:00 is 10:00 UTC: a1 (10:00) is in, b1 (12:00 UTC) is in too.
    reply = fetch(app.url + "/v1/bounces/2026-11-01T12:00:00+02:00/2026-11-01T12:00:00Z", app.tokens["shop"])
    assert recipients(reply.json()) == ["a1@example.net"]
    reply = fetch(app.url + "/v1/bounces/2026-11-01T10:00:00.5Z/2026-11-02T00:00:00Z", app.tokens["shop"])
    assert recipients(reply.json()) == ["b1@example.org"]


def test_json_lines_and_csv_hold_the_same_records(app):
    rows = fetch(app.url + WINDOW, app.tokens["shop"]).json()
    lines = fetch(app.url + WINDOW + "?format=jsonl", app.tokens["shop"])
    assert lines.headers["content-type"] == "application/x-ndjson"
    assert [json.loads(line) for line in lines.body.decode().splitlines()] == rows
    table = fetch(app.url + WINDOW + "?format=csv", app.tokens["shop"])
    assert table.headers["content-type"].startswith("text/csv")
    parsed = list(csv.DictReader(io.StringIO(table.body.decode())))
    assert list(parsed[0]) == FIELDS
    assert [(row["id"], row["recipient"], row["hard"]) for row in parsed] == [
        (str(row["id"]), row["recipient"], "true" if row["hard"] else "false") for row in rows]


def test_csv_cells_that_a_spreadsheet_would_run_as_formulas_are_quoted():
    fields = [name for name, _ in store.EXPORT_FIELDS]
    row = {name: "" for name in fields} | {
        "id": 7, "hard": 1, "recipient": "ann@example.net", "diagnostic": '=HYPERLINK("http://x.test","click")',
        "subject": "-1+2", "reason": "@SUM(A1)",
    }
    (parsed,) = csv.DictReader(io.StringIO(b"".join(api._csv_chunks(iter([tuple(row[f] for f in fields)]))).decode()))
    assert parsed["diagnostic"] == "'=HYPERLINK(\"http://x.test\",\"click\")"
    assert (parsed["subject"], parsed["reason"]) == ("'-1+2", "'@SUM(A1)")
    assert (parsed["id"], parsed["hard"], parsed["recipient"]) == ("7", "true", "ann@example.net")


def test_an_empty_window_is_an_empty_array_in_every_format(app):
    empty = "/v1/bounces/2026-10-01/2026-10-02"
    assert fetch(app.url + empty, app.tokens["shop"]).json() == []
    assert fetch(app.url + empty + "?format=jsonl", app.tokens["shop"]).body == b""
    assert fetch(app.url + empty + "?format=csv", app.tokens["shop"]).body.decode().splitlines() == [",".join(FIELDS)]


@pytest.mark.parametrize(("query", "wanted"), [
    ("recipient=E1@example.com", ["e1@Example.COM"]),
    ("domain=EXAMPLE.org", ["b1@example.org"]),
    ("reason=userunknown", ["a1@example.net"]),
    ("kind=complaint", ["c1@example.net"]),
    ("hard=true", ["a1@example.net", "e1@Example.COM"]),
    ("hard=false&kind=bounce", ["b1@example.org"]),
])
def test_filters(app, query, wanted):
    assert recipients(fetch(f"{app.url}{WINDOW}?{query}", app.tokens["shop"]).json()) == wanted


def test_pages_follow_the_cursor_without_gaps_or_repeats(app):
    seen: list[str] = []
    url = f"{app.url}{WINDOW}?limit=2"
    pages = 0
    while url:
        reply = fetch(url, app.tokens["admin"])
        assert reply.status == 200
        page = recipients(reply.json())
        assert len(page) <= 2
        seen += page
        pages += 1
        link = reply.headers.get("link")
        url = app.url + link[1:link.index(">")] if link else ""
        if link:
            assert "access_token" not in link and reply.headers["x-next-cursor"] in link
    assert seen == expected(None) and pages == 4


def test_pages_followed_with_the_token_in_the_query_keep_it(app):
    """A script that authenticates with ``?access_token=`` follows ``Link: rel="next"`` as
    given, and page two answers it as page one did."""
    url = f"{app.url}{WINDOW}?limit=2&access_token={app.tokens['admin']}"
    pages = 0
    while url:
        reply = fetch(url)
        assert reply.status == 200
        pages += 1
        link = reply.headers.get("link")
        url = app.url + link[1:link.index(">")] if link else ""
        if link:
            assert "access_token=" in link
    assert pages == 4


# -- the stats ---------------------------------------------------------------------------------


def test_stats_count_per_day_outcome_reason_and_domain_with_sent_totals(app):
    data = fetch(app.url + "/v1/stats/2026-11-01/2026-11-04", app.tokens["shop"]).json()
    (shop,) = data["accounts"]
    assert (data["start"], data["end"]) == ("2026-11-01T00:00:00Z", "2026-11-04T00:00:00Z")
    assert shop["account"] == "shop"
    messages, each = SENT["shop"]
    assert shop["sent"] == {"messages": messages, "recipients": messages * each}
    assert shop["bounced"] == {"total": 3, "hard": 2, "soft": 1}
    assert shop["bounce_rate"] == pytest.approx(3 / (messages * each))
    assert shop["outcomes"] == {"bounce": 3, "complaint": 1, "autoreply": 1}
    assert shop["days"] == [{"day": "2026-11-01", "bounce": 2}, {"day": "2026-11-02", "autoreply": 1, "complaint": 1},
                            {"day": "2026-11-03", "bounce": 1}]
    assert {item["reason"]: item["count"] for item in shop["reasons"]} == {
        "userunknown": 1, "mailboxfull": 1, "hostunknown": 1}
    assert shop["domains"] == [{"domain": domain, "count": 1} for domain in ("example.com", "example.net", "example.org")]


def test_an_admin_sees_every_account_or_the_one_asked_for(app):
    everything = fetch(app.url + WINDOW, app.tokens["admin"]).json()
    assert recipients(everything) == expected(None)
    news = fetch(app.url + WINDOW + "?account=news", app.tokens["admin"]).json()
    assert recipients(news) == expected("news")
    stats = fetch(app.url + "/v1/stats/2026-11-01/2026-11-04", app.tokens["admin"]).json()
    assert [item["account"] for item in stats["accounts"]] == ["shop", "news", ""]


# -- the raw bounce ---------------------------------------------------------------------------------


def test_the_raw_bounce_as_stored(app):
    bounce_id = app.ids["a1@example.net"]
    reply = fetch(f"{app.url}/v1/bounces/{bounce_id}/raw", app.tokens["shop"])
    assert reply.status == 200 and reply.headers["content-type"] == "message/rfc822"
    assert reply.body == app.raws["a1@example.net"]
    text = fetch(f"{app.url}/v1/bounces/{bounce_id}/raw?format=text", app.tokens["shop"])
    assert text.headers["content-type"] == "text/plain; charset=utf-8" and text.body == reply.body


# -- the wall between accounts: every endpoint ---------------------------------------------------


def test_an_account_never_sees_another_accounts_records(app):
    news_id = app.ids["n1@example.net"]
    token = app.tokens["shop"]
    rows = fetch(app.url + WINDOW, token).json()
    assert not {"n1@example.net", "n2@example.org", "x1@example.net"} & set(recipients(rows))
    assert fetch(app.url + WINDOW + "?recipient=n1@example.net", token).json() == []
    assert fetch(app.url + WINDOW + "?account=news", token).status == 403
    refused = fetch(f"{app.url}/v1/bounces/{news_id}/raw", token)
    assert refused.status == 404 and refused.json()["error"]["message"] == f"no bounce record {news_id}"
    assert fetch(f"{app.url}/v1/bounces/{news_id}/raw", app.tokens["news"]).body == app.raws["n1@example.net"]
    stats = fetch(app.url + "/v1/stats/2026-11-01/2026-11-04", token).json()
    assert [item["account"] for item in stats["accounts"]] == ["shop"]
    assert fetch(app.url + "/v1/stats/2026-11-01/2026-11-04?account=news", token).status == 403
    news_rows = fetch(app.url + WINDOW, app.tokens["news"]).json()
    assert recipients(news_rows) == expected("news")


def test_an_account_token_on_the_page_sees_its_own_account_only(app):
    page = fetch(app.url + "/?start=2026-11-01&end=2026-11-04", app.tokens["news"]).body.decode()
    assert "n1@example.net" in page and "a1@example.net" not in page and 'data-account="shop"' not in page


# -- errors: JSON, never a 500 ---------------------------------------------------------------------


def test_an_admin_asking_for_an_unknown_account_is_told_the_accounts(app):
    """The same answer as ``bouncefilter bounces --account`` and ``token create``."""
    reply = fetch(app.url + WINDOW + "?account=nosuch", app.tokens["admin"])
    assert reply.status == 400
    assert "no account 'nosuch' in the configuration (accounts: " in reply.json()["error"]["message"]


@pytest.mark.parametrize(("path", "status", "words"), [
    ("/v1/bounces/2026-13-01/2026-11-04", 400, "start: expected YYYY-MM-DD"),
    ("/v1/bounces/yesterday/2026-11-04", 400, "start"),
    ("/v1/bounces/2026-11-01T10:00:00/2026-11-04", 400, "RFC 3339"),
    ("/v1/bounces/2026-11-04/2026-11-01", 400, "end must be after start"),
    ("/v1/bounces/2026-11-01/2026-11-01", 400, "empty"),
    ("/v1/bounces/2026-01-01/2026-11-04", 400, "longer than 40 days"),
    (WINDOW + "?reason=nosuchreason", 400, "reason: expected one of"),
    (WINDOW + "?kind=bounced", 400, "kind"),
    (WINDOW + "?hard=maybe", 400, "hard"),
    (WINDOW + "?domain=not%20a%20domain", 400, "domain"),
    (WINDOW + "?recipient=", 400, "recipient"),
    (WINDOW + "?format=xml", 400, "format"),
    (WINDOW + "?limit=0", 400, "limit"),
    (WINDOW + "?limit=ten", 400, "limit"),
    (WINDOW + "?cursor=bm9uc2Vuc2U", 400, "cursor"),
    (WINDOW + "?cursor=%%%", 400, "cursor"),
    (WINDOW + "?reasn=userunknown", 400, "unknown parameter 'reasn'"),
    (WINDOW + "?kind=bounce&kind=delay", 400, "more than once"),
    ("/v1/stats/2026-11-01/never", 400, "end"),
    ("/v1/bounces/1/raw?format=html", 400, "format"),
    ("/v1/bounces/999999/raw", 404, "no bounce record"),
    ("/v1/nothing", 404, "no such endpoint"),
    ("/v1/bounces/2026-11-01", 404, "no such endpoint"),
    ("/v1/bounces/2026-11-01/2026-11-04/extra", 404, "no such endpoint"),
    ("/v1/bounces/%ff%fe/2026-11-04", 400, "start"),
])
def test_bad_requests_get_a_json_error_saying_what_was_wrong(app, path, status, words):
    reply = fetch(app.url + path, app.tokens["shop"])
    assert reply.status == status
    assert reply.headers["content-type"] == "application/json"
    error = reply.json()["error"]
    assert error["status"] == status and words in error["message"]


def raw_cursor(text: str) -> str:
    """A cursor made up by the client: ``text`` (``received_at/id``) as the API encodes one."""
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


@pytest.mark.parametrize(("path", "words"), [
    # Issue 14, item 5: a 500 with a traceback, or an answer where the API cannot have meant one.
    (WINDOW + "?limit=%C2%B2", "limit: expected a whole number"),  # str.isdigit() takes it, int() does not
    (WINDOW + "?limit=%D9%A1", "limit: expected a whole number"),  # an Arabic-Indic 1: ASCII digits only
    (WINDOW + "?limit=%EF%BC%92", "limit: expected a whole number"),  # a fullwidth 2
    (WINDOW + "?limit=" + "9" * 5000, "limit: expected a whole number"),  # past int()'s 4,300 digits
    (WINDOW + "?cursor=" + query.cursor((DAY0, 2**63)), "cursor"),  # past SQLite's integers
    (WINDOW + "?cursor=" + query.cursor((DAY0, 10**30)), "cursor"),
    (WINDOW + "?cursor=" + raw_cursor(f"{DAY0!r}/{'9' * 5000}"), "cursor"),
    (WINDOW + "?cursor=" + query.cursor((1e300, 1)), "cursor"),  # a time no record has
    (WINDOW + "?cursor=" + query.cursor((-1.0, 1)), "cursor"),
    ("/v1/stats/9999-12-31/9999-12-31T23:59:59.999999999Z", "end: '9999-12-31T23:59:59.999999999Z' is not between"),
    ("/v1/stats/9999-12-31T23:00:00-05:00/9999-12-31T23:30:00-05:00", "start: '9999-12-31T23:00:00-05:00' is not"),
    ("/v1/stats/0001-01-01T00:00:00%2B14:00/0001-02-01", "start: '0001-01-01T00:00:00+14:00' is not between"),
    ("/v1/bounces/0001-01-01T00:00:00%2B01:00/0001-01-02", "start: '0001-01-01T00:00:00+01:00' is not between"),
    ("/v1/bounces/9999-12-31/9999-12-31T23:59:59.5Z", "end"),
    ("/v1/bounces/%D9%A1/raw", "start"),  # not record 1: a record id is in ASCII digits too
])
def test_what_fuzzing_found_is_a_json_400_naming_the_parameter(app, path, words):
    reply = fetch(app.url + path, app.tokens["admin"])
    assert (reply.status, reply.headers["content-type"]) == (400, "application/json")
    error = reply.json()["error"]
    assert error["status"] == 400 and words in error["message"]


@pytest.mark.parametrize(("start", "end"), [("0001-01-01", "0001-01-02"), ("9999-12-30", "9999-12-31"),
                                            ("9999-12-31", "9999-12-31T23:59:59Z")])
def test_the_first_and_last_days_a_date_can_hold_are_windows_like_any(app, start, end):
    stats = fetch(f"{app.url}/v1/stats/{start}/{end}", app.tokens["admin"])
    assert stats.status == 200 and stats.json()["accounts"][0]["bounced"]["total"] == 0
    assert fetch(f"{app.url}/v1/bounces/{start}/{end}?limit=1", app.tokens["admin"]).json() == []


@pytest.mark.parametrize(("period", "status", "shown"), [
    ("end=0001-01-01", 400, "the window [0001-01-01, 0001-01-01) is empty"),
    ("end=0001-01-10", 200, 'name="start" value="0001-01-01"'),  # the default 30 days, cut at the first day
    ("start=9999-12-31", 400, "end must be after start"),
    ("start=9999-12-31&end=9999-12-31T23:59:59Z", 200, 'name="start" value="9999-12-31"'),
    ("end=9999-12-31T23:59:59.5Z", 400, "end: &#x27;9999-12-31T23:59:59.5Z&#x27; is not between"),
    ("start=0001-01-01T00:00%2B00:01&end=0001-01-02", 400, "start: &#x27;0001-01-01T00:00+00:01&#x27; is not between"),
])
def test_the_page_says_what_is_wrong_with_a_period_past_the_years_a_date_holds(app, period, status, shown):
    reply = fetch(f"{app.url}/?{period}", app.tokens["admin"])
    assert reply.status == status and reply.headers["content-type"] == "text/html; charset=utf-8"
    assert shown in reply.body.decode()


@pytest.mark.parametrize(("path", "token", "content_type"), [
    (WINDOW, "shop", "application/json"),
    (WINDOW + "?format=csv", "shop", "text/csv; charset=utf-8"),
    (WINDOW + "?format=jsonl&limit=1", "shop", "application/x-ndjson"),
    ("/v1/stats/2026-11-01/2026-11-04", "shop", "application/json"),
    ("/v1/bounces/{raw}/raw", "shop", "message/rfc822"),
    ("/healthz", None, "application/json"),
    ("/?start=2026-11-01&end=2026-11-04", "shop", "text/html; charset=utf-8"),
    ("/", None, "text/html; charset=utf-8"),
    ("/v1/nothing", "shop", "application/json"),
    (WINDOW + "?limit=ten", "shop", "application/json"),
    (WINDOW, None, "application/json"),
    ("/?access_token={token}", None, None),  # the redirect that moves the token into the cookie
])
def test_every_answer_says_nosniff(app, path, token, content_type):
    path = path.format(raw=app.ids["a1@example.net"], token=app.tokens["shop"])
    reply = fetch(app.url + path, app.tokens.get(token or ""))
    assert reply.headers["x-content-type-options"] == "nosniff"
    assert reply.headers.get("content-type") == content_type


@pytest.mark.parametrize(("token", "header", "detail"), [
    (None, None, "required"),
    ("bf_00000000_" + "A" * 43, None, "not valid"),
    ("not-even-a-token", None, "not valid"),
    ("revoked", None, "not valid"),
    (None, "Basic c2hvcDpzaG9w", "only Bearer"),
])
def test_a_missing_or_wrong_token_is_a_401_with_a_challenge(app, token, header, detail):
    token = app.tokens.get(token or "", token)
    for path in (WINDOW, "/v1/stats/2026-11-01/2026-11-04", f"/v1/bounces/{app.ids['b1@example.org']}/raw"):
        reply = fetch(app.url + path, token, headers={"Authorization": header} if header else None)
        assert reply.status == 401, path
        assert reply.headers["www-authenticate"].startswith('Bearer realm="bouncefilter"')
        assert detail in reply.json()["error"]["message"]


def test_the_token_may_come_in_the_query_string(app):
    reply = fetch(f"{app.url}{WINDOW}?access_token={app.tokens['shop']}")
    assert recipients(reply.json()) == expected("shop")


@pytest.mark.parametrize(("method", "path", "allow"), [
    ("POST", WINDOW, "GET, HEAD"), ("DELETE", "/v1/bounces/1/raw", "GET, HEAD"), ("PUT", "/healthz", "GET, HEAD"),
    ("GET", "/login", "POST"),
])
def test_a_wrong_method_is_a_405_naming_the_allowed_ones(app, method, path, allow):
    reply = fetch(app.url + path, app.tokens["shop"], method=method, data=b"" if method != "GET" else None)
    assert reply.status == 405 and reply.headers["allow"] == allow
    assert reply.json()["error"]["status"] == 405


def test_head_answers_the_headers_only(app):
    reply = fetch(app.url + WINDOW, app.tokens["shop"], method="HEAD")
    assert reply.status == 200 and reply.body == b"" and reply.headers["content-type"] == "application/json"


def test_strange_paths_never_get_a_500(app):
    for path in ("/v1/bounces/%00/%00", "/v1/stats/../../etc", "/%e2%82%ac", "/v1/bounces/9" * 30,
                 "/v1/bounces/99999999999999999999/raw", "/?start=2026-02-30", "/?end=1", "/?account=%00"):
        reply = fetch(app.url + path, app.tokens["admin"])
        assert reply.status < 500, path


# -- tokens, the log, health ---------------------------------------------------------------------


def test_tokens_are_stored_only_as_hashes(app):
    conn = store.connect(app.database)
    dump = "\n".join(conn.iterdump())
    conn.close()
    assert app.tokens["shop"] not in dump
    assert app.tokens["shop"][12:] not in dump  # the secret (it may hold "_" itself: split would cut it short)


def test_the_access_log_never_holds_a_token(app, caplog):
    caplog.set_level(logging.INFO, logger="bouncefilter.api.app")
    token = app.tokens["shop"]
    fetch(f"{app.url}{WINDOW}?kind=bounce&access_token={token}")
    fetch(f"{app.url}/?access_token={token}")
    fetch(app.url + WINDOW, token)
    lines = [record.getMessage() for record in caplog.records if record.name == "bouncefilter.api.app"]
    assert any("access_token=REDACTED" in line and "kind=bounce" in line for line in lines)
    assert len(lines) >= 3 and not any(token in line or token[12:] in line for line in lines)


@pytest.mark.parametrize(("target", "logged"), [
    ("/healthz?x=1%0a127.0.0.1%20GET%20/healthz%20200", "/healthz?x=1\\x0a127.0.0.1 GET /healthz 200 200"),
    ("/v1/nothing%0d%0a127.0.0.1%20GET%20/healthz", "/v1/nothing\\x0d\\x0a127.0.0.1 GET /healthz 404"),
    ("/healthz?x=%00%1b[2J%7f", "/healthz?x=\\x00\\x1b[2J\\x7f 200"),
    ("/healthz?x=%E2%80%A8%C2%85", "/healthz?x=\\u2028\\x85 200"),
    ("/healthz?x=\\x0a", "/healthz?x=\\\\x0a 200"),  # a backslash the client sent cannot pass for an escape
    ("/healthz?x=%E2%82%AC+%26", "/healthz?x=\u20ac & 200"),  # the query decoded, as the API reads it
    ("/healthz?access%5Ftoken=TOKEN", "/healthz?access_token=REDACTED 200"),
    ("/healthz?%61ccess_token=TOKEN&x=1", "/healthz?access_token=REDACTED&x=1 200"),
    ("/healthz?acces_token=TOKEN", "/healthz?acces_token=bf_KEYID_REDACTED 200"),  # misspelt: still not written
    ("/v1/TOKEN", "/v1/bf_KEYID_REDACTED 404"),
])
def test_the_access_log_cannot_be_forged_and_holds_no_token_however_it_is_escaped(app, caplog, target, logged):
    caplog.set_level(logging.INFO, logger="bouncefilter.api.app")
    token = app.tokens["news"]
    fetch(app.url + target.replace("TOKEN", token))
    (line,) = [record.getMessage() for record in caplog.records if record.name == "bouncefilter.api.app"]
    assert line.endswith(" GET " + logged.replace("KEYID", tokens.key_id(token) or ""))
    assert token[12:] not in line and not any(ord(char) < 32 or 0x7F <= ord(char) < 0xA0 for char in line)


def test_healthz_says_the_store_is_reachable_and_current(app, tmp_path):
    assert fetch(app.url + "/healthz").json() == {"status": "ok", "schema": store.SCHEMA_VERSION}
    old = seed(tmp_path)
    conn = store.connect(old.database)
    conn.execute("PRAGMA user_version = 1")
    conn.close()
    with serving(old) as served:
        reply = fetch(served.url + "/healthz")
        assert reply.status == 503 and "try again later" in reply.json()["error"]["message"]
        assert fetch(served.url + WINDOW, served.tokens["shop"]).status == 503
    Path(old.database).unlink()
    with serving(old) as served:
        assert fetch(served.url + "/healthz").status == 503
        assert not Path(old.database).exists()  # the API never creates a database


def test_a_purged_raw_bounce_is_a_404_that_says_so(app):
    conn = store.connect(app.database)
    store.purge(conn, DAY0 + 86400 * 2 + 1, 3650, 1)  # raw messages older than a day
    conn.close()
    reply = fetch(f"{app.url}/v1/bounces/{app.ids['a1@example.net']}/raw", app.tokens["shop"])
    assert reply.status == 404 and "no longer kept" in reply.json()["error"]["message"]


def test_the_token_migration_keeps_an_older_stores_records(tmp_path):
    """A store from before the token table gets it (and the index) and keeps its rows."""
    introduced = next(version for version, sql in store.MIGRATIONS if "api_tokens" in sql)
    conn = store.connect(str(tmp_path / "old.db"))
    for version, sql in store.MIGRATIONS:
        if version < introduced:
            for statement in store.db._statements(sql):
                conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {version}")
    conn.execute("INSERT INTO bounces (dedup_key, received_at, account, outcome, kind, recipient)"
                 " VALUES ('k', ?, 'shop', 'bounce', 'bounce', 'a@example.net')", (DAY0,))  # as that version wrote it
    assert store.migrate(conn) == store.SCHEMA_VERSION
    assert [row["recipient"] for row in store.bounces(conn)] == ["a@example.net"]
    indexes = {name for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
    assert "bounces_account_outcome_received" in indexes
    token = tokens.create(conn, "shop", DAY0)
    wrong = token[:-1] + ("A" if token[-1] != "A" else "B")
    assert tokens.verify(conn, token) is not None and tokens.verify(conn, wrong) is None
