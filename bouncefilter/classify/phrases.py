"""Matching diagnostics against the wording table of :mod:`bouncefilter.classify.wording`.

:func:`normalise` turns a diagnostic into the form the table is written for: lower case,
one space between words, typographic quotes made plain, and every inserted item (an
address, a name in quotes or angle brackets, a host or IP address in square brackets)
replaced by ``~``. A wording compiles to a regular expression in which ``{macros}`` are
expanded and every space between two words also admits one ``~``: so
``user unknown`` matches ``user <a@example.com> unknown`` and ``{user} {exist}`` matches
``mailbox "info" does not exist``.

Matching stays cheap: every wording has anchors, words that any match contains at a word
start (its longest literal word, else the words its first macro can begin with); each
word of the text looks its anchors up in a dictionary, and only the rules an anchor
present wakes run their regular expression, compiled on first use, highest row first.
"""

from __future__ import annotations

import re

from bouncefilter.classify.wording import MACROS, TABLE
from bouncefilter.core.address import FOUND

#: What a space between two words of a wording also admits: one inserted item.
GAP = " (?:~ )?"

_INSERT_RE = re.compile(
    r"<[^<>\s]{0,254}>"  # <a@example.com>, <postmaster>
    r"|\"[^\"\s]{1,80}\""  # "info"
    r"|(?<![\w'])'[^'\s]{1,80}'(?![\w'])"  # 'info' (not the apostrophe of doesn't)
    r"|\[[^\[\]\s]{0,80}[.@:][^\[\]\s]{0,80}\]"  # [192.0.2.1], [mx.example.com]; not [CS01]
    rf"|(?<![^\s(,;:]){FOUND}"  # a bare address
)
_TRAILING_RE = re.compile(r"~ ?[:,;.]")
_QUOTES = str.maketrans({"\u2018": "'", "\u2019": "'", "\u201c": '"', "\u201d": '"', "\u00a0": " "})


def normalise(text: str) -> str:
    """``text`` as the table reads it: lower case, inserted items as ``~``, one space."""
    text = text.lower().translate(_QUOTES)
    if "<" in text or "@" in text or '"' in text or "'" in text or "[" in text:
        text = _INSERT_RE.sub(" ~ ", text)
        text = _TRAILING_RE.sub("~ ", " ".join(text.split()))
    return " ".join(text.split())


def match(text: str) -> str:
    """The reason of the highest row with a wording in ``text`` (as :func:`normalise`
    gives it), or ``""``."""
    woken = set(_ALWAYS)
    for word in _words(text) - _INERT:
        woken.update(_WAKES.get(word) or _wakes(word))
    for rule in sorted(woken):
        if _pattern(rule).search(text):
            return TABLE[_RULES[rule][0]].reason
    return ""


# -- compiling the table ------------------------------------------------------------

_MACRO_RE = re.compile(r"\{([a-z]+)\}")
_REGEX_CHARS = frozenset("\\[](){}?*+.|^$")
_BOUNDARY_RE = re.compile(r"\\b")
_ESCAPE_RE = re.compile(r"\\.(?:[?*+]|\{\d*,?\d*\})?")
_CLASS_RE = re.compile(r"\[[^\]]*\](?:[?*+]|\{\d*,?\d*\})?")
_GROUP_RE = re.compile(r"\([^()]*\)(?:[?*+]|\{\d*,?\d*\})?")
_QUANTIFIED_RE = re.compile(r"[^\x00\x01](?:[?*+]|\{\d*,?\d*\})")
_MARK_RE = re.compile(r"([\x00\x01])")
_WORD_RE = re.compile(r"[a-z0-9]+")
_WORD_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789")


def expand(wording: str) -> str:
    """The regular expression of a wording: macros expanded, a :data:`GAP` for every
    space between two words (not inside a character class, not a quantified space)."""
    out: list[str] = []
    in_class = False
    for index, char in enumerate(wording):
        escaped = index and wording[index - 1] == "\\"
        if char == "[" and not escaped:
            in_class = True
        elif char == "]" and not escaped:
            in_class = False
        following = wording[index + 1 : index + 3]
        quantified = following[:1] in ("?", "*", "+") or (following[:1] == "{" and following[1:] in "0123456789,")
        if char == " " and not in_class and not quantified and 0 < index < len(wording) - 1:
            out.append(GAP)
        else:
            out.append(char)
    return _MACRO_RE.sub(lambda found: f"(?:{MACROS[found.group(1)].pattern})", "".join(out))


def anchors(wording: str) -> tuple[str, ...]:
    """Words every match of ``wording`` contains, each where a word of the text starts:
    its longest literal word, else the words its first macro may start with; ``()``
    when neither exists (the rule then runs on every text)."""
    if _REGEX_CHARS.isdisjoint(wording):  # plain words, as most wordings are
        return (max(_WORD_RE.findall(wording), key=len, default=""),)
    macro = _MACRO_RE.search(wording)
    flat = _flatten(_MACRO_RE.sub("(?:_)", wording))
    words = [word for run, safe in _runs(flat) for word in _run_words(run, safe)]
    best = max(words, key=len, default="")
    if len(best) >= 2:
        return (best,)
    if macro and macro.start() == 0:
        return MACROS[macro.group(1)].starts
    return _leading_group(wording) or (MACROS[macro.group(1)].starts if macro else ())


def _flatten(phrase: str) -> str:
    """``phrase`` with what is not literal marked: ``\\x01`` where a word starts (``\\b``),
    ``\\x00`` for escapes, classes, groups (innermost first), quantified characters and
    wildcards."""
    flat = _BOUNDARY_RE.sub("\x01", phrase)
    flat = _ESCAPE_RE.sub(_escape_mark, flat)
    flat = _CLASS_RE.sub("\x00", flat)
    while "(" in flat:
        inner = _GROUP_RE.sub("\x00", flat)
        if inner == flat:
            break
        flat = inner
    return _QUANTIFIED_RE.sub("\x00", flat).replace(".", "\x00")


def _escape_mark(found: re.Match[str]) -> str:
    """An escaped punctuation character (``\\[``, ``\\.``) ends a word, so what follows it
    starts one (``\\x01``); any other escape or quantified escape is not literal."""
    escape = found.group()
    return "\x01" if len(escape) == 2 and not escape[1].isalnum() else "\x00"


def _runs(flat: str) -> list[tuple[str, bool]]:
    """The literal runs of a flattened phrase, each with whether it starts a word."""
    runs = []
    safe = True  # the start of the phrase, or after \b, starts a word
    for piece in _MARK_RE.split(flat):
        if piece in ("\x00", "\x01"):
            safe = piece == "\x01"
            continue
        if piece:
            runs.append((piece, safe))
        safe = False
    return runs


def _run_words(run: str, safe: bool) -> list[str]:
    """The words (runs of ``[a-z0-9]``, as the text is split) of a literal run that stand
    where a word of the text starts: all of them, except the first when the run may
    begin inside a word of the text."""
    words = [(found.start(), found.group()) for found in _WORD_RE.finditer(run)]
    if words and not safe and words[0][0] == 0:
        words = words[1:]
    return [word for _, word in words]


def _leading_group(phrase: str) -> tuple[str, ...]:
    """The first words of the alternatives of a group that starts ``phrase`` and must
    match (``(?:account|mailbox) full`` -> ``account``, ``mailbox``); ``()`` if not every
    alternative starts with a literal word."""
    if not phrase.startswith("(?:"):
        return ()
    depth, end = 0, -1
    for index, char in enumerate(phrase):
        depth += (char == "(") - (char == ")")
        if depth == 0:
            end = index
            break
    if end < 0 or phrase[end + 1 : end + 2] in ("?", "*", "{"):
        return ()
    alternatives: list[str] = []
    current: list[str] = []
    depth = 0
    for char in phrase[3:end]:
        depth += (char == "(") - (char == ")")
        if char == "|" and depth == 0:
            alternatives.append("".join(current))
            current = []
        else:
            current.append(char)
    alternatives.append("".join(current))
    starts = [_WORD_RE.match(alternative) for alternative in alternatives]
    if not all(starts):
        return ()
    return tuple(sorted({start.group() for start in starts if start}))


#: A rule: the row it belongs to, and its wordings joined by ``\x00`` (expanded and
#: compiled into one pattern on first use).
Rule = tuple[int, str]


def _index() -> tuple[tuple[Rule, ...], dict[str, tuple[tuple[str, int], ...]], tuple[int, ...]]:
    """The rules (a row's wordings that share an anchor); the anchors that wake each rule,
    keyed by their first three characters; the rules with no anchor."""
    grouped: dict[tuple[str, int], list[str]] = {}
    for number, row in enumerate(TABLE):
        for wording in row.wordings:
            for anchor in anchors(wording) or ("",):
                grouped.setdefault((anchor, number), []).append(wording)
    rules: list[Rule] = []
    index: dict[str, list[tuple[str, int]]] = {}
    always: list[int] = []
    for (anchor, number), members in grouped.items():
        rules.append((number, "\x00".join(members)))
        if anchor:
            index.setdefault(anchor[:3], []).append((anchor, len(rules) - 1))
        else:
            always.append(len(rules) - 1)
    return tuple(rules), {key: tuple(found) for key, found in index.items()}, tuple(always)


_RULES, _INDEX, _ALWAYS = _index()
#: Rules compiled on first use: a process that classifies one bounce compiles a few.
_COMPILED: dict[int, re.Pattern[str]] = {}
#: What each word of a text wakes, remembered: bounces share their vocabulary, so a
#: batch looks most words up once. Words that wake nothing are only remembered as such.
_WAKES: dict[str, frozenset[int]] = {}
_INERT: set[str] = set()
_MAX_WORDS = 8192
#: Each ASCII character that cannot be part of a word, as a space.
_SPACED = [char if char in _WORD_CHARS else " " for char in map(chr, range(128))]


def _words(text: str) -> set[str]:
    """The distinct words (runs of ``[a-z0-9]``) of ``text``."""
    if text.isascii():
        return set(text.translate(_SPACED).split())
    return set(_WORD_RE.findall(text))


def _wakes(word: str) -> frozenset[int]:
    """The rules whose anchor ``word`` starts with."""
    rules = frozenset(
        rule for key in {word[:3], word[:2]} for anchor, rule in _INDEX.get(key, ()) if word.startswith(anchor)
    )
    if not rules:
        if len(_INERT) >= _MAX_WORDS:
            _INERT.clear()
        _INERT.add(word)
        return rules
    if len(_WAKES) >= _MAX_WORDS:
        _WAKES.clear()
    _WAKES[word] = rules
    return rules


def _pattern(rule: int) -> re.Pattern[str]:
    pattern = _COMPILED.get(rule)
    if pattern is None:
        pattern = _COMPILED[rule] = re.compile("|".join(map(expand, _RULES[rule][1].split("\x00"))))
    return pattern
