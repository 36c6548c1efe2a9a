"""The suppression list's endpoints, served for real on loopback and asked with urllib:
listing (filters, pages, CSV), explaining, lifting, adding and importing, their 400s,
404s and 409s, the wall between accounts, and admin tokens."""

from __future__ import annotations

import csv
import io
import json
import logging
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest

from bouncefilter import store
from bouncefilter.api import suppressions, tokens

from api_data import ANGRY, DAY0, DIAGNOSTIC, GONE, LIFTED, MANUAL, NEWS_ONLY, Reply, Served, fetch, pages, seed_suppressions, serving

LIST = "/v1/suppressions"
NOW = DAY0 + 2.5 * 86400  # the served clock
SHOP = [GONE, ANGRY, *MANUAL]  # shop's active listings, in the order they were made


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """A store nobody changes: for the tests that only read."""
    with serving(seed_suppressions(tmp_path_factory.mktemp("suppressions"))) as served:
        yield served


@pytest.fixture
def fresh(tmp_path: Path) -> Iterator[Served]:
    """A store of its own: for the tests that list and lift."""
    with serving(seed_suppressions(tmp_path)) as served:
        yield served


def addresses(reply: Reply) -> list[str]:
    assert reply.status == 200, reply.body
    return [row["address"] for row in reply.json()]  # type: ignore[index, union-attr]


def post(served: Served, body: object, role: str = "shop", query: str = "", content_type: str = "application/json",
         headers: dict[str, str] | None = None) -> Reply:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    return fetch(f"{served.url}{LIST}{query}", served.tokens[role], method="POST", data=data,
                 headers={"Content-Type": content_type, **(headers or {})})


def history(served: Served, account: str, address: str) -> list[dict[str, object]]:
    conn = store.connect(served.database)
    try:
        return store.suppressions.history(conn, account, address)
    finally:
        conn.close()


def error_of(reply: Reply, status: int) -> str:
    assert (reply.status, reply.headers["content-type"]) == (status, "application/json"), reply.body
    error = reply.json()["error"]  # type: ignore[index]
    assert error["status"] == status
    return str(error["message"])


# -- listing -------------------------------------------------------------------------------


def test_an_account_lists_its_active_listings_in_the_order_they_were_made(app):
    reply = fetch(app.url + LIST, app.tokens["shop"])
    assert reply.headers["content-type"] == "application/json" and reply.headers["cache-control"] == "no-store"
    assert addresses(reply) == SHOP
    gone = reply.json()[0]
    assert gone == {"address": GONE, "reason": "hard", "created_at": "2026-11-01T02:00:00Z", "account": "shop",
                    "detail": "userunknown", "until": None, "lifted_at": None, "lifted_by": "", "active": True,
                    "bounce_ids": [app.ids[GONE]]}


@pytest.mark.parametrize(("query", "wanted"), [
    ("reason=complaint", [ANGRY]),
    ("reason=HARD", [GONE]),
    ("reason=import", []),
    ("search=EXAMPLE.COM", list(MANUAL)),
    ("search=m3", ["m3@example.com"]),
    ("search=%20gone%20", [GONE]),
    ("search=nobody", []),
    ("lifted=true&search=old", [LIFTED]),
    ("lifted=false&search=old", []),
    ("lifted=yes", [*SHOP, LIFTED]),
    ("reason=manual&search=m&lifted=true", [*MANUAL, LIFTED]),
])
def test_filters(app, query, wanted):
    assert addresses(fetch(f"{app.url}{LIST}?{query}", app.tokens["shop"])) == wanted


def test_a_lifted_listing_says_who_lifted_it_and_when(app):
    (row,) = fetch(f"{app.url}{LIST}?lifted=true&search={LIFTED}", app.tokens["shop"]).json()
    assert (row["lifted_at"], row["lifted_by"], row["active"]) == ("2026-11-02T00:00:00Z", "cli:root", False)


@pytest.mark.parametrize("in_query", [False, True])
def test_pages_follow_the_cursor_without_gaps_or_repeats(app, in_query):
    token = app.tokens["shop"]
    url = f"{app.url}{LIST}?limit=3" + (f"&access_token={token}" if in_query else "")
    replies = pages(app.url, url, None if in_query else token)
    for reply in replies[:-1]:
        link = reply.headers["link"]
        assert link.endswith('>; rel="next"') and reply.headers["x-next-cursor"] in link
        assert ("access_token=" in link) == in_query
    assert "x-next-cursor" not in replies[-1].headers and "link" not in replies[-1].headers
    assert [len(addresses(reply)) for reply in replies] == [3, 3, 1]
    assert [address for reply in replies for address in addresses(reply)] == SHOP


def test_a_page_exactly_as_long_as_whats_left_has_no_next_link(app):
    reply = fetch(f"{app.url}{LIST}?limit={len(SHOP)}", app.tokens["shop"])
    assert addresses(reply) == SHOP and "link" not in reply.headers


def test_csv_puts_mailgun_and_ses_columns_first(app):
    reply = fetch(f"{app.url}{LIST}?format=csv&lifted=true", app.tokens["shop"])
    assert reply.status == 200 and reply.headers["content-type"] == "text/csv; charset=utf-8"
    rows = list(csv.reader(io.StringIO(reply.body.decode())))
    assert rows[0] == ["address", "reason", "created_at", "account", "detail", "until", "lifted_at", "lifted_by"]
    assert [row[0] for row in rows[1:]] == [*SHOP, LIFTED]
    assert rows[1] == [GONE, "hard", "2026-11-01T02:00:00Z", "shop", "userunknown", "", "", ""]
    assert rows[-1][6:] == ["2026-11-02T00:00:00Z", "cli:root"]


def test_csv_pages_like_json(app):
    first = fetch(f"{app.url}{LIST}?format=csv&limit=2", app.tokens["shop"])
    rows = list(csv.DictReader(io.StringIO(first.body.decode())))
    assert [row["address"] for row in rows] == SHOP[:2] and "format=csv" in first.headers["link"]


def test_csv_cells_that_would_run_as_formulas_are_quoted(fresh):
    reply = post(fresh, {"address": "f@example.com", "detail": "=HYPERLINK(\"http://x.test\")"})
    assert reply.status == 201
    body = fetch(f"{fresh.url}{LIST}?format=csv&search=f@", fresh.tokens["shop"]).body.decode()
    (row,) = csv.DictReader(io.StringIO(body))
    assert row["detail"] == "'=HYPERLINK(\"http://x.test\")"


def test_nothing_listed_is_an_empty_array_and_a_header_line(app):
    assert fetch(f"{app.url}{LIST}?search=nobody", app.tokens["shop"]).json() == []
    body = fetch(f"{app.url}{LIST}?search=nobody&format=csv", app.tokens["shop"]).body.decode()
    assert body.splitlines() == ["address,reason,created_at,account,detail,until,lifted_at,lifted_by"]


# -- the wall between accounts, and admin tokens --------------------------------------------------


def test_an_account_never_sees_another_accounts_listings(app):
    shop = fetch(f"{app.url}{LIST}?lifted=true", app.tokens["shop"]).json()
    assert {row["account"] for row in shop} == {"shop"} and NEWS_ONLY not in [row["address"] for row in shop]
    news = fetch(app.url + LIST, app.tokens["news"]).json()
    assert [(row["account"], row["address"], row["reason"]) for row in news] == [
        ("news", GONE, "manual"), ("news", NEWS_ONLY, "import")]
    assert error_of(fetch(f"{app.url}{LIST}?account=news", app.tokens["shop"]), 403) == (
        "this token sees its own account only")
    assert fetch(f"{app.url}{LIST}?search={NEWS_ONLY}", app.tokens["shop"]).json() == []


def test_an_account_sees_only_its_own_part_of_an_addresses_story(app):
    shop = fetch(f"{app.url}{LIST}/{GONE}", app.tokens["shop"]).json()
    news = fetch(f"{app.url}{LIST}/{GONE}", app.tokens["news"]).json()
    for told, account in ((shop, "shop"), (news, "news")):
        rows = told["suppressions"] + told["messages"] + told["records"] + told["history"]
        assert rows and {row["account"] for row in rows} == {account}
    assert news["records"] == [] and news["messages"] == [] and news["suppressions"][0]["detail"] == "news's own"
    assert error_of(fetch(f"{app.url}{LIST}/{NEWS_ONLY}", app.tokens["shop"]), 404).startswith(NEWS_ONLY)


def test_an_account_never_lifts_or_lists_on_another_accounts_list(fresh):
    lifted = fetch(f"{fresh.url}{LIST}/{NEWS_ONLY}", fresh.tokens["shop"], method="DELETE")
    assert "not on the suppression list of account 'shop'" in error_of(lifted, 404)
    assert error_of(fetch(f"{fresh.url}{LIST}/{NEWS_ONLY}?account=news", fresh.tokens["shop"], method="DELETE"),
                    403) == "this token sees its own account only"
    assert error_of(post(fresh, {"address": "x@example.com"}, query="?account=news"), 403)
    assert NEWS_ONLY in addresses(fetch(fresh.url + LIST, fresh.tokens["news"]))
    # lifting shop's listing of GONE leaves news's listing of the same address alone
    assert fetch(f"{fresh.url}{LIST}/{GONE}", fresh.tokens["shop"], method="DELETE").status == 200
    assert GONE in addresses(fetch(fresh.url + LIST, fresh.tokens["news"]))


def test_an_admin_sees_every_account_or_the_one_asked_for(app):
    everything = fetch(app.url + LIST, app.tokens["admin"]).json()
    assert [(row["account"], row["address"]) for row in everything] == [
        *(("shop", address) for address in SHOP), ("news", GONE), ("news", NEWS_ONLY)]
    assert addresses(fetch(f"{app.url}{LIST}?account=news", app.tokens["admin"])) == [GONE, NEWS_ONLY]
    told = fetch(f"{app.url}{LIST}/{GONE}", app.tokens["admin"]).json()
    assert [row["account"] for row in told["suppressions"]] == ["news", "shop"]
    one = fetch(f"{app.url}{LIST}/{GONE}?account=news", app.tokens["admin"]).json()
    assert [row["account"] for row in one["suppressions"]] == ["news"]
    assert "no account 'nosuch' in the configuration" in error_of(
        fetch(f"{app.url}{LIST}?account=nosuch", app.tokens["admin"]), 400)


def test_an_admin_must_name_the_account_it_changes(fresh):
    for reply in (fetch(f"{fresh.url}{LIST}/{GONE}", fresh.tokens["admin"], method="DELETE"),
                  post(fresh, {"address": "x@example.com"}, role="admin")):
        assert "an admin token must name the account" in error_of(reply, 400)
    reply = post(fresh, {"address": "x@example.com"}, role="admin", query="?account=news")
    assert reply.status == 201 and reply.json()["account"] == "news"
    assert "x@example.com" in addresses(fetch(fresh.url + LIST, fresh.tokens["news"]))


# -- the story ----------------------------------------------------------------------------------


def test_the_story_holds_the_listing_the_message_the_record_and_the_changes(app):
    reply = fetch(f"{app.url}{LIST}/{GONE}", app.tokens["shop"])
    assert reply.status == 200 and reply.headers["content-type"] == "application/json"
    told = reply.json()
    assert told["address"] == GONE
    (listed,) = told["suppressions"]
    assert (listed["reason"], listed["active"], listed["created_at"], listed["bounce_ids"]) == (
        "hard", True, "2026-11-01T02:00:00Z", [app.ids[GONE]])
    (sent,) = told["messages"]
    assert (sent["message_id"], sent["sent_at"], sent["subject"]) == (
        "<story@shop.example.com>", "2026-11-01T01:00:00Z", "Your order <b>42</b>")
    (record,) = told["records"]
    assert (record["id"], record["reason"], record["hard"], record["diagnostic"]) == (
        app.ids[GONE], "userunknown", True, DIAGNOSTIC)
    (change,) = told["history"]
    assert (change["change"], change["actor"], change["bounce_id"], change["at"]) == (
        "created", "pipe", app.ids[GONE], "2026-11-01T02:00:00Z")


@pytest.mark.parametrize("spelling", ["GONE@Example.NET", "%3Cgone@example.net%3E", "gone@EXAMPLE.net"])
def test_the_story_finds_the_address_however_it_is_written(app, spelling):
    assert fetch(f"{app.url}{LIST}/{spelling}", app.tokens["shop"]).json()["suppressions"][0]["reason"] == "hard"


def test_an_address_with_only_records_has_a_story_and_an_unknown_one_is_a_404(app):
    told = fetch(f"{app.url}{LIST}/a1@example.net", app.tokens["shop"]).json()
    assert told["suppressions"] == [] and [row["reason"] for row in told["records"]] == ["userunknown"]
    message = error_of(fetch(f"{app.url}{LIST}/nobody@example.com", app.tokens["shop"]), 404)
    assert message == "nobody@example.com was never on the suppression list of account 'shop' and has no records"


# -- lifting ----------------------------------------------------------------------------------


def test_lifting_takes_the_address_off_and_writes_down_the_tokens_key_id(fresh):
    token = fresh.tokens["shop"]
    reply = fetch(f"{fresh.url}{LIST}/{quote('M1@example.com')}", token, method="DELETE")
    assert reply.status == 200
    lifted = reply.json()["lifted"]
    actor = f"api:{tokens.key_id(token)}"
    assert (lifted["address"], lifted["active"], lifted["lifted_by"]) == ("m1@example.com", False, actor)
    assert lifted["lifted_at"] == "2026-11-03T12:00:00Z"
    assert "m1@example.com" not in addresses(fetch(fresh.url + LIST, token))
    assert [(row["change"], row["actor"]) for row in history(fresh, "shop", "m1@example.com")] == [
        ("created", "cli:root"), ("lifted", actor)]
    again = fetch(f"{fresh.url}{LIST}/m1@example.com", token, method="DELETE")
    assert error_of(again, 404) == "m1@example.com is not on the suppression list of account 'shop'"


def test_a_complaint_is_lifted_by_an_admin_token_only(fresh):
    refused = fetch(f"{fresh.url}{LIST}/{ANGRY}", fresh.tokens["shop"], method="DELETE")
    assert error_of(refused, 409) == f"{ANGRY} is listed for a complaint: only an admin token may lift it"
    assert ANGRY in addresses(fetch(fresh.url + LIST, fresh.tokens["shop"]))
    lifted = fetch(f"{fresh.url}{LIST}/{ANGRY}?account=shop", fresh.tokens["admin"], method="DELETE")
    assert lifted.status == 200 and lifted.json()["lifted"]["reason"] == "complaint"
    assert ANGRY not in addresses(fetch(fresh.url + LIST, fresh.tokens["shop"]))


def test_a_lifted_address_can_be_listed_again(fresh):
    assert fetch(f"{fresh.url}{LIST}/{GONE}", fresh.tokens["shop"], method="DELETE").status == 200
    reply = post(fresh, {"address": GONE, "detail": "back again"})
    assert reply.status == 201 and reply.json()["added"] == 1
    (row,) = fetch(f"{fresh.url}{LIST}?search={GONE}", fresh.tokens["shop"]).json()
    assert (row["reason"], row["detail"], row["lifted_at"]) == ("manual", "back again", None)


# -- adding and importing -----------------------------------------------------------------------


def test_adding_one_address(fresh):
    reply = post(fresh, {"address": "<New@Example.COM>", "detail": "asked to stop", "until": "2026-12-01T00:00:00Z"})
    assert reply.status == 201
    assert reply.json() == {"account": "shop", "added": 1, "already_listed": 0, "refused": 0, "refusals": []}
    (row,) = fetch(f"{fresh.url}{LIST}?search=new@", fresh.tokens["shop"]).json()
    assert (row["address"], row["reason"], row["detail"], row["until"], row["created_at"]) == (
        "New@example.com", "manual", "asked to stop", "2026-12-01T00:00:00Z", "2026-11-03T12:00:00Z")
    assert history(fresh, "shop", "new@example.com")[0]["actor"] == f"api:{tokens.key_id(fresh.tokens['shop'])}"
    again = post(fresh, {"address": "new@example.com"})
    assert again.status == 200 and (again.json()["added"], again.json()["already_listed"]) == (0, 1)


def test_importing_a_json_array_counts_what_was_added_listed_already_and_refused(fresh):
    body = [{"address": "i1@example.com", "reason": "import", "created_at": "2026-10-01T08:00:00+02:00"},
            {"address": GONE},
            {"address": "not an address"},
            {"address": "i2@example.com", "reason": "complaint"},
            "i3@example.com",
            {"address": "i4@example.com", "until": "2020-01-01T00:00:00Z"},
            {"address": "i5@example.com", "untill": "2027-01-01T00:00:00Z"},
            {"address": "i6@example.com", "until": None}]
    reply = post(fresh, body)
    assert reply.status == 200
    data = reply.json()
    assert (data["added"], data["already_listed"], data["refused"]) == (2, 1, 5)
    assert [(item["item"], item["address"]) for item in data["refusals"]] == [
        (3, "not an address"), (4, "i2@example.com"), (5, ""), (6, "i4@example.com"), (7, "i5@example.com")]
    whys = [item["why"] for item in data["refusals"]]
    assert whys[0].startswith("address: not a mail address") and whys[1].startswith("reason: expected manual or import")
    assert "object" in whys[2] and "has passed already" in whys[3] and "unknown key 'untill'" in whys[4]
    listed = {row["address"]: row for row in fetch(f"{fresh.url}{LIST}?search=@example.com", fresh.tokens["shop"]).json()}
    assert listed["i1@example.com"]["created_at"] == "2026-10-01T06:00:00Z"  # its own date kept
    assert listed["i1@example.com"]["reason"] == "import" and listed["i6@example.com"]["reason"] == "manual"


MAILGUN_CSV = (
    "address,reason,created_at\r\n"
    "c1@example.com,hard bounce,2026-10-02T10:00:00Z\r\n"
    "c2@example.com,,\"Thu, 01 Oct 2026 18:02:00 UTC\"\r\n"
    "\r\n"
    "bogus,manual,\r\n"
    "c3@example.com,import,2026-10-03 09:30:00\r\n"
    "c4@example.com,manual,yesterday\r\n"
    f"{GONE},hard bounce,2026-10-02T10:00:00Z\r\n"
)


def test_importing_a_mailgun_or_ses_csv_keeps_each_date(fresh):
    reply = post(fresh, MAILGUN_CSV.encode(), content_type="text/csv")
    data = reply.json()
    assert reply.status == 200, data
    assert (data["added"], data["already_listed"], data["refused"]) == (3, 1, 2)
    assert [(item["line"], item["address"]) for item in data["refusals"]] == [(5, "bogus"), (7, "c4@example.com")]
    assert "created_at" in data["refusals"][1]["why"]
    rows = {row["address"]: row for row in fetch(f"{fresh.url}{LIST}?search=c", fresh.tokens["shop"]).json()}
    assert (rows["c1@example.com"]["reason"], rows["c1@example.com"]["detail"]) == ("import", "hard bounce")
    assert rows["c1@example.com"]["created_at"] == "2026-10-02T10:00:00Z"
    assert rows["c2@example.com"]["created_at"] == "2026-10-01T18:02:00Z"
    assert (rows["c3@example.com"]["reason"], rows["c3@example.com"]["created_at"]) == ("import", "2026-10-03T09:30:00Z")


def test_an_export_imports_into_another_account_as_it_was(fresh):
    exported = fetch(f"{fresh.url}{LIST}?format=csv", fresh.tokens["shop"]).body
    reply = post(fresh, exported, role="admin", query="?account=news", content_type="text/csv; charset=utf-8")
    assert reply.json()["added"] == len(SHOP) - 1 and reply.json()["already_listed"] == 1  # GONE is news's already
    news = {row["address"]: row for row in fetch(fresh.url + LIST, fresh.tokens["news"]).json()}
    assert news["m1@example.com"]["created_at"] == "2026-11-01T02:30:00Z"
    assert (news[ANGRY]["reason"], news[ANGRY]["detail"]) == ("import", "complaint: feedback")  # never a complaint by import


def test_a_large_import_lists_every_address(fresh):
    lines = ["address"] + [f"bulk{n}@example.com" for n in range(2500)]
    reply = post(fresh, "\n".join(lines).encode(), content_type="text/csv")
    assert reply.json()["added"] == 2500
    page = fetch(f"{fresh.url}{LIST}?search=bulk&limit=100000", fresh.tokens["shop"])
    assert len(addresses(page)) == 2500


@pytest.mark.parametrize(("body", "content_type", "words"), [
    (b"{", "application/json", "bad JSON: Expecting property name"),
    (b"[1, 2", "application/json", "bad JSON"),
    (b"\xff\xfe", "application/json", "bad JSON: not UTF-8"),
    (b"[" * 100_000, "application/json", "bad JSON"),
    (b"42", "application/json", "bad JSON: expected an object or an array"),
    (b'{"address": "nobody"}', "application/json", "address: not a mail address"),
    (b'{"address": "a@example.com", "reason": "hard"}', "application/json", "reason: expected manual or import"),
    (b'{"address": "a@example.com", "until": "next week"}', "application/json", "until"),
    (b'{"address": "a@example.com", "until": "2027-01-01T00:00:00"}', "application/json", "has no zone"),
    (b'{"address": "a@example.com", "until": 5}', "application/json", "until: 5 has passed already"),  # epoch seconds
    (b'{"address": "a@example.com", "until": true}', "application/json", "until: expected a string"),
    (b'{"address": "a@example.com", "created_at": "2030-01-01"}', "application/json", "in the future"),
    (b'{"address": "a@example.com", "created_at": "Mon, 99 Foo 2026"}', "application/json", "created_at: not a date"),
    (b'{"adress": "a@example.com"}', "application/json", "unknown key 'adress'"),
    (b'{"address": 7}', "application/json", "address: required"),
    (b'{"address": "a@example.com", "detail": "' + b"x" * 1001 + b'"}', "application/json", "detail: at most"),
    (b"mail,reason\r\na@example.com,x\r\n", "text/csv", "bad CSV: the first line must be a header"),
    (b"", "text/csv", "bad CSV"),
    (b'address\r\n"a@example.com\r\n', "text/csv", "bad CSV: line"),
    (b"address\r\n\xff\r\n", "text/csv", "bad CSV: not UTF-8"),
    (b"address=a@example.com", "application/x-www-form-urlencoded", None),
])
def test_a_bad_body_is_a_json_error_naming_what_is_wrong(fresh, body, content_type, words):
    reply = post(fresh, body, content_type=content_type)
    if words is None:
        assert "expected a body of application/json or text/csv" in error_of(reply, 415)
    else:
        assert words in error_of(reply, 400)
    assert addresses(fetch(fresh.url + LIST, fresh.tokens["shop"])) == SHOP  # nothing listed


def test_a_body_past_ten_mib_is_a_413_and_one_without_a_length_a_411(fresh):
    limit = 10 * 1024 * 1024
    big = b"address\n" + b"z@example.com\n" * (limit // 14 + 1)
    assert len(big) > limit
    try:
        reply = post(fresh, big, content_type="text/csv")
    except OSError:  # the server may close before the client has sent it all
        reply = post(fresh, b"address\n", content_type="text/csv", headers={"Content-Length": str(limit + 1)})
    assert "at most 10485760 octets" in error_of(reply, 413)
    told = post(fresh, b"address\n", content_type="text/csv", headers={"Content-Length": str(limit + 1)})
    assert error_of(told, 413)
    exact = b"address\n" + b"\n" * (limit - 8)  # exactly the limit: read
    assert len(exact) == limit and post(fresh, exact, content_type="text/csv").json()["added"] == 0


@pytest.mark.parametrize(("path", "status", "words"), [
    (LIST + "?reason=bounced", 400, "reason: expected one of hard, soft, complaint, manual, import"),
    (LIST + "?lifted=maybe", 400, "lifted: expected one of"),
    (LIST + "?format=xml", 400, "format: expected one of json, csv"),
    (LIST + "?limit=0", 400, "limit"),
    (LIST + "?limit=%D9%A1", 400, "limit"),
    (LIST + "?cursor=bm9uc2Vuc2U", 400, "cursor"),
    (LIST + "?cursor=" + suppressions.cursor(2**63), 400, "cursor"),
    (LIST + "?cursor=%%%", 400, "cursor"),
    (LIST + "?serch=x", 400, "unknown parameter 'serch'"),
    (LIST + "?search=a&search=b", 400, "more than once"),
    (LIST + "/not-an-address", 400, "address: not a mail address"),
    (LIST + "/%00@example.com", 400, "address: not a mail address"),
    (LIST + "/" + "x" * 300 + "@example.com", 400, "address: not a mail address"),
    (LIST + f"/{GONE}?limit=1", 400, "unknown parameter 'limit'"),
    (LIST + "/", 404, "no such endpoint"),
])
def test_bad_requests_get_a_json_error_saying_what_was_wrong(app, path, status, words):
    assert words in error_of(fetch(app.url + path, app.tokens["shop"]), status)


@pytest.mark.parametrize(("method", "path", "allow"), [
    ("PUT", LIST, "GET, HEAD, POST"), ("DELETE", LIST, "GET, HEAD, POST"), ("PATCH", LIST, "GET, HEAD, POST"),
    ("POST", f"{LIST}/{GONE}", "DELETE, GET, HEAD"), ("PUT", f"{LIST}/{GONE}", "DELETE, GET, HEAD"),
])
def test_a_wrong_method_is_a_405_naming_the_allowed_ones(app, method, path, allow):
    reply = fetch(app.url + path, app.tokens["shop"], method=method, data=b"")
    assert reply.headers["allow"] == allow and "is not allowed here" in error_of(reply, 405)


@pytest.mark.parametrize(("method", "path"), [("GET", LIST), ("GET", f"{LIST}/{GONE}"), ("DELETE", f"{LIST}/{GONE}"),
                                              ("POST", LIST)])
def test_every_endpoint_wants_a_valid_token(app, method, path):
    for token in (None, app.tokens["revoked"]):
        reply = fetch(app.url + path, token, method=method, data=b"{}" if method == "POST" else None,
                      headers={"Content-Type": "application/json"})
        assert reply.headers["www-authenticate"].startswith('Bearer realm="bouncefilter"')
        assert error_of(reply, 401)
    assert GONE in addresses(fetch(app.url + LIST, app.tokens["shop"]))  # the DELETE did nothing


@pytest.mark.parametrize(("method", "path", "body"), [
    ("GET", LIST, None), ("GET", LIST + "?format=csv", None), ("GET", f"{LIST}/{GONE}", None),
    ("GET", LIST + "/nobody@example.com", None), ("POST", LIST, b"{"), ("DELETE", LIST + "/nobody@example.com", None),
])
def test_every_answer_says_nosniff(app, method, path, body):
    reply = fetch(app.url + path, app.tokens["shop"], method=method, data=body,
                  headers={"Content-Type": "application/json"})
    assert reply.headers["x-content-type-options"] == "nosniff"


def test_the_access_log_never_holds_a_token(fresh, caplog):
    caplog.set_level(logging.INFO, logger="bouncefilter.api.app")
    token = fresh.tokens["shop"]
    fetch(f"{fresh.url}{LIST}?search=m&access_token={token}")
    fetch(f"{fresh.url}{LIST}/m2@example.com?access_token={token}", method="DELETE")
    lines = [record.getMessage() for record in caplog.records if record.name == "bouncefilter.api.app"]
    assert any(" GET /v1/suppressions?search=m&access_token=REDACTED 200" in line for line in lines)
    assert any(" DELETE /v1/suppressions/m2@example.com?access_token=REDACTED 200" in line for line in lines)
    assert not any(token in line or token[12:] in line for line in lines)


def test_suppression_events_are_queued_for_the_accounts_targets(tmp_path):
    """A listing and a lifting made through the API each queue a row for a target that
    wants suppression events (the forwarder hands them on)."""
    served = seed_suppressions(tmp_path)
    text = Path(served.config_path).read_text(encoding="utf-8").replace(
        "{name: shop, domains: [shop.example.com]}",
        "{name: shop, domains: [shop.example.com], forward: [{type: webhook, url: 'http://127.0.0.1:9/hook',"
        " secrets: [0123456789abcdef0123456789abcdef]}]}")
    Path(served.config_path).write_text(text, encoding="utf-8")
    with serving(served) as app:
        assert post(app, {"address": "hooked@example.com"}).status == 201
        assert fetch(f"{app.url}{LIST}/hooked@example.com", app.tokens["shop"], method="DELETE").status == 200
    conn = store.connect(served.database)
    queued = conn.execute("SELECT h.change, o.target FROM outbox o JOIN suppression_history h ON h.id = o.history_id"
                          " WHERE h.address_key = 'hooked@example.com' ORDER BY o.id").fetchall()
    conn.close()
    assert queued == [("created", "shop:webhook:http://127.0.0.1:9/hook"), ("lifted", "shop:webhook:http://127.0.0.1:9/hook")]
