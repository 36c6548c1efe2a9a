"""The overview page and its login form: server-rendered HTML with inline CSS and an
inline SVG chart. No script, no web font, nothing fetched from elsewhere."""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

from bouncefilter.api import query
from bouncefilter.api.stats import AccountStats
from bouncefilter.core.window import iso

#: The chart's outcomes, bottom up, with their colours; any other outcome is "other".
CHART_OUTCOMES = (("bounce", "#c0392b"), ("delay", "#e67e22"), ("complaint", "#8e44ad"),
                  ("autoreply", "#2980b9"), ("delivered", "#27ae60"), ("other", "#95a5a6"))
_WIDTH, _HEIGHT, _LEFT, _BOTTOM = 720, 220, 40, 24

_STYLE = """
body{font:15px/1.4 system-ui,sans-serif;margin:0;color:#222;background:#f6f6f4}
header{background:#263238;color:#fff;padding:.6em 1.2em;display:flex;gap:1.5em;align-items:center;flex-wrap:wrap}
header h1{font-size:1.2em;margin:0}
header form{display:flex;gap:.5em;align-items:center;margin:0}
main{padding:1em 1.2em;max-width:1100px}
section.account{background:#fff;border:1px solid #ddd;border-radius:6px;padding:1em;margin-bottom:1.5em}
.cards{display:flex;gap:1em;flex-wrap:wrap;margin:0;padding:0}
.cards div{border:1px solid #e3e3e3;border-radius:4px;padding:.5em .9em;min-width:8em}
.cards dt{font-size:.8em;color:#666}.cards dd{margin:0;font-size:1.5em;font-weight:600}
.cards small{font-size:.6em;font-weight:normal;color:#666}
.columns{display:flex;gap:2em;flex-wrap:wrap}
table{border-collapse:collapse;margin:.5em 0}td,th{padding:.15em .6em;text-align:left;border-bottom:1px solid #eee}
td.n{text-align:right;font-variant-numeric:tabular-nums}
.legend span{display:inline-block;margin-right:1em}.legend i{display:inline-block;width:.8em;height:.8em;margin-right:.3em}
.login{max-width:28em;margin:4em auto;background:#fff;border:1px solid #ddd;border-radius:6px;padding:1.5em}
.login input[type=password]{width:100%;box-sizing:border-box;padding:.4em;margin:.5em 0}
.problem{color:#b00020}.empty{color:#777}
section.suppressions{background:#fff;border:1px solid #ddd;border-radius:6px;padding:1em;margin-bottom:1.5em}
form.search{margin:.5em 0}header h1 a{color:inherit;text-decoration:none}
section.story td{vertical-align:top;white-space:nowrap}ul.status{padding-left:1.2em}
section.story td.long{white-space:normal;overflow-wrap:anywhere;min-width:12em}
"""


def login(problem: str = "") -> str:
    """The login form: a token, posted to ``/login``."""
    message = f'<p class="problem" role="alert">{escape(problem)}</p>' if problem else ""
    body = f"""<main class="login"><h1>bouncefilter</h1>
<p>Sign in with an API token (<code>bouncefilter token create</code> makes one).</p>{message}
<form method="post" action="/login"><label for="token">API token</label>
<input type="password" id="token" name="token" autocomplete="off" required>
<button type="submit">Sign in</button></form></main>"""
    return document("bouncefilter: sign in", body)


def overview(accounts: Sequence[AccountStats], since: float, until: float, choices: Sequence[str] | None,
             chosen: str, problem: str = "", suppressions: str = "") -> str:
    """The page: the period form, then one section per account in ``accounts``, then
    ``suppressions`` (the list's section, HTML already escaped).
    ``choices`` are the accounts an admin token may pick from (``None`` for an account's
    token), ``chosen`` the one picked (empty: all); ``problem`` says what was wrong with
    the period asked for (the page then shows the default one)."""
    sections = "\n".join(_account(item, since, until) for item in accounts)
    if not accounts:
        sections = '<p class="empty">No records in this period.</p>'
    alert = f'<p class="problem" role="alert">{escape(problem)}</p>' if problem else ""
    body = f"""<header><h1>bouncefilter</h1>{_period_form(since, until, choices, chosen)}
<form method="post" action="/logout"><button type="submit">Sign out</button></form></header>
<main>{alert}<p>From {escape(iso(since))} up to {escape(iso(until))} (UTC; the end is not included).</p>
{sections}
{suppressions}</main>"""
    return document("bouncefilter: overview", body)


def document(title: str, body: str) -> str:
    """A whole HTML document around ``body`` (already escaped), with the style sheet."""
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{escape(title)}</title><style>{_STYLE}</style></head><body>\n{body}\n</body></html>\n")


def _period_form(since: float, until: float, choices: Sequence[str] | None, chosen: str) -> str:
    """The form that picks the period (and, for an admin, the account); a plain GET."""
    picker = ""
    if choices is not None:
        options = "".join(f'<option value="{escape(name)}"{" selected" if name == chosen else ""}>{escape(name)}</option>'
                          for name in choices)
        picker = f'<label>Account <select name="account"><option value="">all</option>{options}</select></label>'
    return (f'<form method="get" action="/"><label>From <input type="date" name="start" value="{query.day(since)}">'
            f'</label><label>until (not included) <input type="date" name="end" value="{query.day(until)}"></label>'
            f'{picker}<button type="submit">Show</button></form>')


def _account(item: AccountStats, since: float, until: float) -> str:
    """One account's section: the numbers, the chart, the tables."""
    name = escape(item.account or "(no account)")
    rate = "-" if item.bounce_rate is None else f"{100 * item.bounce_rate:.1f} %"
    cards = [
        ("sent", "Sent", f"{item.messages}", f"{item.recipients} recipients"),
        ("bounced", "Bounced", f"{item.bounced}", f"{item.hard} hard, {item.soft} soft"),
        ("complaints", "Complaints", f"{item.outcomes.get('complaint', 0)}", ""),
        ("autoreplies", "Auto-replies", f"{item.outcomes.get('autoreply', 0)}", ""),
        ("rate", "Bounce rate", rate, "of recipients"),
    ]
    dl = "".join(f'<div><dt>{label}</dt><dd data-metric="{key}">{value}'
                 f'{f" <small>{escape(note)}</small>" if note else ""}</dd></div>' for key, label, value, note in cards)
    return f"""<section class="account" data-account="{escape(item.account)}"><h2>{name}</h2>
<dl class="cards">{dl}</dl>
<h3>Records per day</h3>{_chart(item, since, until)}
<div class="columns"><div><h3>Reasons</h3>{_counts(item.reasons, "reason")}</div>
<div><h3>Recipient domains that bounce most</h3>{_counts(item.domains, "domain")}</div></div>
<h3>Latest hard bounces</h3>{_latest(item.latest_hard, "hard-bounces")}
<h3>Latest complaints</h3>{_latest(item.latest_complaints, "complaints")}
</section>"""


def _chart(item: AccountStats, since: float, until: float) -> str:
    """Stacked bars of the rows per day by outcome, with a legend; a bar's title tells
    its numbers (shown on hover, read by screen readers)."""
    days = query.days(since, until)
    names = [name for name, _ in CHART_OUTCOMES]
    stacks = []
    for day in days:
        counts = dict.fromkeys(names, 0)
        for outcome, count in item.days.get(day, {}).items():
            counts[outcome if outcome in counts else "other"] += count
        stacks.append(counts)
    top = max([sum(counts.values()) for counts in stacks] + [1])
    plot_width, plot_height = _WIDTH - _LEFT, _HEIGHT - _BOTTOM
    step = plot_width / len(days)
    bars = []
    for index, (day, counts) in enumerate(zip(days, stacks)):
        x, y = _LEFT + index * step, float(plot_height)
        tip = escape(f"{day}: " + ", ".join(f"{n} {name}" for name, n in counts.items() if n) if any(counts.values())
                     else f"{day}: none")
        parts = []
        for name, colour in CHART_OUTCOMES:
            height = counts[name] / top * (plot_height - 10)
            if height:
                y -= height
                parts.append(f'<rect x="{x + step * 0.1:.1f}" y="{y:.1f}" width="{step * 0.8:.1f}" '
                             f'height="{height:.1f}" fill="{colour}"/>')
        bars.append(f'<g class="day" data-day="{day}"><title>{tip}</title>'
                    f'<rect x="{x:.1f}" y="0" width="{step:.1f}" height="{plot_height}" fill="transparent"/>'
                    f'{"".join(parts)}</g>')
    axis = (f'<line x1="{_LEFT}" y1="{plot_height}" x2="{_WIDTH}" y2="{plot_height}" stroke="#999"/>'
            f'<text x="{_LEFT - 4}" y="14" text-anchor="end" font-size="11">{top}</text>'
            f'<text x="{_LEFT - 4}" y="{plot_height}" text-anchor="end" font-size="11">0</text>'
            f'<text x="{_LEFT}" y="{_HEIGHT - 6}" font-size="11">{days[0]}</text>'
            f'<text x="{_WIDTH}" y="{_HEIGHT - 6}" text-anchor="end" font-size="11">{days[-1]}</text>')
    legend = "".join(f'<span><i style="background:{colour}"></i>{name}</span>' for name, colour in CHART_OUTCOMES)
    return (f'<svg class="chart" role="img" aria-label="records per day by kind" viewBox="0 0 {_WIDTH} {_HEIGHT}" '
            f'width="100%" style="max-width:{_WIDTH}px" xmlns="http://www.w3.org/2000/svg">{axis}{"".join(bars)}</svg>'
            f'<div class="legend">{legend}</div>')


def _counts(pairs: Sequence[tuple[str, int]], what: str) -> str:
    """A table of (value, count) pairs, class ``{what}s``."""
    if not pairs:
        return '<p class="empty">None.</p>'
    rows = "".join(f"<tr><td>{escape(value or '-')}</td><td class=\"n\">{count}</td></tr>" for value, count in pairs)
    return f'<table class="{what}s"><tr><th>{what}</th><th>bounces</th></tr>{rows}</table>'


def _latest(rows: Sequence[dict[str, object]], what: str) -> str:
    """A table of the latest rows of one kind, class ``what``, each with its raw link."""
    if not rows:
        return '<p class="empty">None.</p>'
    lines = []
    for row in rows:
        raw = (f'<a href="/v1/bounces/{row["id"]}/raw?format=text">raw</a>' if row["raw_id"] is not None
               else '<span class="empty">purged</span>')
        lines.append(f"<tr><td>{escape(iso(float(row['received_at'])))}</td>"  # type: ignore[arg-type]
                     f"<td>{escape(str(row['recipient']) or '-')}</td><td>{escape(str(row['reason']))}</td>"
                     f"<td>{escape(str(row['status']) or '-')}</td><td>{raw}</td></tr>")
    return (f'<table class="{what}"><tr><th>received</th><th>recipient</th><th>reason</th><th>status</th>'
            f'<th></th></tr>{"".join(lines)}</table>')
