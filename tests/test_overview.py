"""The overview page: its login (form, cookie, token in the URL once) over HTTP, then
what a person sees in headless Chromium (Debian's chromium and chromium-driver); the
suppression list's search and "why is this address bouncing?" both ways."""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from api_data import ANGRY, DIAGNOSTIC, GONE, MANUAL, NEWS_ONLY, SENT, Served, fetch, seed, seed_suppressions, serving

PERIOD = "start=2026-11-01&end=2026-11-04"
CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--window-size=1200,1600")


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    with serving(seed(tmp_path_factory.mktemp("overview"))) as served:
        yield served


def cookie_of(reply_headers: dict[str, str]) -> str:
    return reply_headers["set-cookie"].split(";")[0]


def test_without_a_token_the_page_is_the_login_form(app):
    reply = fetch(app.url + "/")
    page = reply.body.decode()
    assert reply.status == 200 and reply.headers["content-type"] == "text/html; charset=utf-8"
    assert '<form method="post" action="/login">' in page and 'name="token"' in page
    assert "<script" not in page and "http://" not in page.replace('xmlns="http://www.w3.org/2000/svg"', "")


def test_the_form_sets_an_httponly_cookie_that_opens_the_page(app):
    token = app.tokens["shop"]
    reply = fetch(app.url + "/login", method="POST", data=f"token={token}".encode(),
                  headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert reply.status == 303 and reply.headers["location"] == "/"
    attributes = [part.strip() for part in reply.headers["set-cookie"].split(";")]
    assert attributes[0] == f"bouncefilter_token={token}" and "HttpOnly" in attributes
    assert "SameSite=Strict" in attributes and "Path=/" in attributes
    page = fetch(f"{app.url}/?{PERIOD}", headers={"Cookie": cookie_of(reply.headers)}).body.decode()
    assert 'data-account="shop"' in page and "a1@example.net" in page


def test_a_wrong_token_in_the_form_shows_the_form_again_saying_so(app):
    reply = fetch(app.url + "/login", method="POST", data=b"token=bf_nothing",
                  headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert reply.status == 401 and "not valid" in reply.body.decode() and "set-cookie" not in reply.headers
    reply = fetch(app.url + "/", headers={"Cookie": f"bouncefilter_token={app.tokens['revoked']}"})
    assert reply.status == 401 and "Max-Age=0" in reply.headers["set-cookie"]


def test_a_token_in_the_url_is_moved_into_the_cookie_and_out_of_the_url(app):
    reply = fetch(f"{app.url}/?access_token={app.tokens['shop']}&{PERIOD}")
    assert reply.status == 303 and reply.headers["location"] == f"/?{PERIOD}"
    assert "HttpOnly" in reply.headers["set-cookie"]
    assert fetch(f"{app.url}/?access_token=bf_wrong").status == 401


def test_sign_out_forgets_the_cookie(app):
    reply = fetch(app.url + "/logout", method="POST", data=b"")
    assert reply.status == 303 and reply.headers["set-cookie"].startswith("bouncefilter_token=;")
    assert "Max-Age=0" in reply.headers["set-cookie"]


def test_an_admin_sees_every_account_and_can_pick_one(app):
    page = fetch(f"{app.url}/?{PERIOD}", app.tokens["admin"]).body.decode()
    assert 'data-account="shop"' in page and 'data-account="news"' in page and "<select" in page
    page = fetch(f"{app.url}/?{PERIOD}&account=news", app.tokens["admin"]).body.decode()
    assert 'data-account="news"' in page and 'data-account="shop"' not in page


def test_a_bad_period_is_said_on_the_page_which_shows_the_default_one(app):
    reply = fetch(f"{app.url}/?start=2026-11-04&end=2026-11-01", app.tokens["shop"])
    page = reply.body.decode()
    assert reply.status == 400 and reply.headers["content-type"].startswith("text/html")
    assert 'role="alert">the window [2026-11-04, 2026-11-01) is empty' in page
    assert 'name="end" value="2026-11-04"' in page  # the default: 30 days up to the app's today


@pytest.fixture
def browser() -> Iterator[object]:
    if not (os.access(CHROMIUM, os.X_OK) and os.access(CHROMEDRIVER, os.X_OK)):
        pytest.skip("needs Debian's chromium and chromium-driver (make venv installs them)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    with tempfile.TemporaryDirectory(prefix="bouncefilter-chromium-") as profile:
        options.add_argument(f"--user-data-dir={profile}")
        driver = webdriver.Chrome(options=options, service=Service(executable_path=CHROMEDRIVER))
        driver.set_page_load_timeout(60)
        try:
            yield driver
        finally:
            driver.quit()


def test_a_person_signs_in_and_sees_the_overview(app, browser, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.wait import WebDriverWait

    driver = browser
    driver.get(f"{app.url}/?{PERIOD}")
    field = driver.find_element(By.ID, "token")
    field.send_keys(app.tokens["shop"])
    driver.find_element(By.CSS_SELECTOR, "form[action='/login'] button").click()
    WebDriverWait(driver, 30).until(lambda page: page.find_elements(By.CSS_SELECTOR, "form[action='/logout']"))
    driver.find_element(By.NAME, "start").send_keys("11/01/2026")  # the date field as a person types it
    driver.find_element(By.NAME, "end").send_keys("11/04/2026")
    driver.find_element(By.CSS_SELECTOR, "form[method='get'] button").click()
    WebDriverWait(driver, 30).until(lambda page: "start=2026-11-01" in page.current_url)
    section = driver.find_element(By.CSS_SELECTOR, "section[data-account='shop']")
    shown = {element.get_attribute("data-metric"): element.text
             for element in section.find_elements(By.CSS_SELECTOR, "dd[data-metric]")}
    messages, each = SENT["shop"]
    assert shown["sent"].split()[:2] == [str(messages), str(messages * each)]
    assert shown["bounced"].split()[0] == "3" and "2 hard, 1 soft" in shown["bounced"]
    assert shown["complaints"] == "1" and shown["autoreplies"] == "1"
    assert shown["rate"].startswith(f"{100 * 3 / (messages * each):.1f} %")
    chart = section.find_element(By.CSS_SELECTOR, "svg.chart")
    assert chart.size["width"] > 300 and chart.size["height"] > 50
    days = chart.find_elements(By.CSS_SELECTOR, "g.day")
    assert [day.get_attribute("data-day") for day in days] == ["2026-11-01", "2026-11-02", "2026-11-03"]
    assert all(len(day.find_elements(By.CSS_SELECTOR, "rect")) >= 2 for day in days)  # a bar each day
    assert "n1@example.net" not in driver.page_source  # another account's
    assert driver.execute_script("return document.cookie") == ""  # HttpOnly: no script sees the token
    reasons = section.find_element(By.CSS_SELECTOR, "table.reasons").text
    assert "userunknown" in reasons and "hostunknown" in reasons
    hard = section.find_element(By.CSS_SELECTOR, "table.hard-bounces")
    assert "a1@example.net" in hard.text and "e1@Example.COM" in hard.text and "b1@example.org" not in hard.text
    assert "c1@example.net" in section.find_element(By.CSS_SELECTOR, "table.complaints").text
    driver.save_screenshot(str(Path(tempfile.gettempdir()) / "bouncefilter-overview.png"))
    row = next(row for row in hard.find_elements(By.TAG_NAME, "tr") if "a1@example.net" in row.text)
    row.find_element(By.LINK_TEXT, "raw").click()
    assert "Subject: bounce about a1@example.net" in driver.find_element(By.TAG_NAME, "body").text


# -- the suppression list and one address's story ------------------------------------------------


@pytest.fixture(scope="module")
def listed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    with serving(seed_suppressions(tmp_path_factory.mktemp("listed"))) as served:
        yield served


def listed_addresses(page: str) -> list[str]:
    return re.findall(r'<tr data-address="([^"]+)">', page)


def test_the_page_lists_the_accounts_suppressed_addresses_and_searches_them(listed):
    page = fetch(f"{listed.url}/?{PERIOD}", listed.tokens["shop"]).body.decode()
    assert listed_addresses(page) == [GONE, ANGRY, *MANUAL]
    assert '<form method="get" action="/" class="search" role="search">' in page and NEWS_ONLY not in page
    found = fetch(f"{listed.url}/?{PERIOD}&search=M3", listed.tokens["shop"]).body.decode()
    assert listed_addresses(found) == ["m3@example.com"]
    assert '<input type="hidden" name="start" value="2026-11-01">' in found  # the period is kept
    none = fetch(f"{listed.url}/?search=nobody", listed.tokens["shop"]).body.decode()
    assert listed_addresses(none) == [] and "No listed address contains that." in none
    whole = fetch(f"{listed.url}/?search={GONE}", listed.tokens["shop"]).body.decode()
    assert f'<a class="why" href="/why?address=gone%40example.net">Why is {GONE} bouncing?</a>' in whole


def test_an_admin_sees_every_accounts_list_with_the_account(listed):
    page = fetch(f"{listed.url}/?search={GONE}", listed.tokens["admin"]).body.decode()
    assert listed_addresses(page) == [GONE, GONE] and "<th>account</th>" in page
    assert 'href="/why?address=gone%40example.net&amp;account=news"' in page
    news = fetch(f"{listed.url}/?account=news", listed.tokens["admin"]).body.decode()
    assert listed_addresses(news) == [GONE, NEWS_ONLY]


def test_the_story_page_escapes_what_the_remote_side_wrote(listed):
    reply = fetch(f"{listed.url}/why?address={GONE}", listed.tokens["shop"])
    page = reply.body.decode()
    assert reply.status == 200 and reply.headers["content-type"] == "text/html; charset=utf-8"
    assert "<script" not in page and "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; more" in page
    assert "Your order &lt;b&gt;42&lt;/b&gt;" in page and "<b>42" not in page
    assert "default-src 'none'" in reply.headers["content-security-policy"]


def test_the_story_page_is_the_tokens_own_and_says_when_nothing_is_known(listed):
    news = fetch(f"{listed.url}/why?address={GONE}", listed.tokens["news"]).body.decode()
    assert "news&#x27;s own" in news and "no such user" not in news and "Your order" not in news
    unknown = fetch(f"{listed.url}/why?address=nobody@example.com", listed.tokens["shop"]).body.decode()
    assert 'id="unknown">nobody@example.com was never listed and has no records.' in unknown
    bad = fetch(f"{listed.url}/why?address=%3Cb%3Enot-one", listed.tokens["shop"])
    assert bad.status == 400 and "address: not a mail address" in bad.body.decode() and "<b>" not in bad.body.decode()
    assert fetch(f"{listed.url}/why?address={GONE}&account=news", listed.tokens["shop"]).status == 403
    login = fetch(f"{listed.url}/why?address={GONE}")
    assert '<form method="post" action="/login">' in login.body.decode() and GONE not in login.body.decode()


def test_a_detail_with_markup_is_shown_as_text(tmp_path):
    served = seed_suppressions(tmp_path)
    with serving(served) as app:
        body = b'{"address": "markup@example.com", "detail": "<img src=x onerror=alert(1)>"}'
        assert fetch(app.url + "/v1/suppressions", app.tokens["shop"], method="POST", data=body,
                     headers={"Content-Type": "application/json"}).status == 201
        for path in ("/?search=markup", "/why?address=markup@example.com"):
            page = fetch(app.url + path, app.tokens["shop"]).body.decode()
            assert "&lt;img src=x onerror=alert(1)&gt;" in page and "<img" not in page


def test_a_person_searches_the_list_and_reads_why_an_address_bounces(listed, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.wait import WebDriverWait

    driver = browser
    driver.get(f"{listed.url}/?access_token={listed.tokens['shop']}&{PERIOD}")  # into the cookie, out of the URL
    WebDriverWait(driver, 30).until(lambda page: page.find_elements(By.CSS_SELECTOR, "section.suppressions"))
    assert "access_token" not in driver.current_url
    rows = driver.find_elements(By.CSS_SELECTOR, "table.listed tr[data-address]")
    assert [row.get_attribute("data-address") for row in rows] == [GONE, ANGRY, *MANUAL]
    box = driver.find_element(By.ID, "search")
    box.send_keys("gone")
    driver.find_element(By.CSS_SELECTOR, "form.search button").click()
    WebDriverWait(driver, 30).until(lambda page: "search=gone" in page.current_url)
    assert "start=2026-11-01" in driver.current_url  # the period went along
    (row,) = driver.find_elements(By.CSS_SELECTOR, "table.listed tr[data-address]")
    assert "hard" in row.text and "userunknown" in row.text
    row.find_element(By.LINK_TEXT, GONE).click()
    WebDriverWait(driver, 30).until(lambda page: page.find_elements(By.CSS_SELECTOR, "section.story"))
    story = driver.find_element(By.CSS_SELECTOR, "section.story")
    assert story.find_element(By.TAG_NAME, "h2").text == GONE
    status = story.find_element(By.CSS_SELECTOR, "ul.status li")
    assert status.get_attribute("data-active") == "true" and "suppressed (hard, userunknown)" in status.text
    records = story.find_element(By.CSS_SELECTOR, "table.records")
    assert DIAGNOSTIC in records.text  # the markup shown as text, never run
    assert "Your order <b>42</b>" in story.find_element(By.CSS_SELECTOR, "table.messages").text
    change = story.find_element(By.CSS_SELECTOR, "table.history").text
    assert "created" in change and "pipe" in change
    driver.save_screenshot(str(Path(tempfile.gettempdir()) / "bouncefilter-why.png"))
    field = driver.find_element(By.ID, "address")  # the page's own question box
    field.clear()
    field.send_keys(ANGRY)
    field.submit()
    WebDriverWait(driver, 30).until(lambda page: "angry" in page.current_url)
    story = driver.find_element(By.CSS_SELECTOR, "section.story")
    assert "suppressed (complaint, feedback)" in story.find_element(By.CSS_SELECTOR, "ul.status").text
    assert "complaint" in story.find_element(By.CSS_SELECTOR, "table.records").text
    records = story.find_element(By.CSS_SELECTOR, "table.records")
    records.find_element(By.LINK_TEXT, "raw").click()
    assert f"bounce about {ANGRY}" in driver.find_element(By.TAG_NAME, "body").text
