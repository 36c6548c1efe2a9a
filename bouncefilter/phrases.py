"""How MTAs word each failure: the text rules behind :func:`bouncefilter.reasons.decide`.

One ordered table of ``(reason, phrases)`` rows; the first row with a phrase anywhere
in the (lower-cased, whitespace-collapsed) diagnostic wins, so a row stands above the
rows it must beat. A reason may have several rows: a decisive wording high up, a vague
one near the bottom (``recipient address rejected`` says userunknown only when nothing
more precise follows it, as in ``Recipient address rejected: Policy violation``).

Matching stays cheap: every phrase has an anchor, a literal run that starts a word and
that any match contains (found by reading the phrase itself); each word of the text
looks its anchors up in a dictionary, and only the phrases an anchor present wakes run
their regular expression, compiled on first use. Phrases stay linear: literal words,
character classes and bounded gaps (``.{0,40}``), no nested quantifiers.

The wordings are facts collected from real bounces (Postfix, Sendmail, Exim, qmail,
Exchange, Gmail, Yahoo, Orange, ...) and from sisimai's per-reason message lists.
"""

from __future__ import annotations

import re

_TABLE: tuple[tuple[str, tuple[str, ...]], ...] = (
    # The remote names the reason outright, whatever else the text says.
    ("virusdetected", (
        r"virus (?:detected|found)", r"infected with", r"contains? (?:a )?virus", r"malware",
        r"executable (?:attachment|files are not allowed)", r"used by recent viruses",
        r"virus phishing",
    )),
    ("spamdetected", (
        r"spam or virus", r"spam/virus", r"spam classification", r"(?:detected|classified|identified|scored|rejected|considered) as spam",
        r"spam (?:detected|blocked|refused|rejection|score|message rejected|not accepted|content)",
        r"looks? like spam", r"appears? to be (?:spam|unsolicited)", r"probable spam",
        r"high probability of spam", r"message content rejected", r"\bube\b",
        r"unsolicited (?:bulk|commercial)", r"spam-like", r"mail content denied",
        r"blocked by spamassassin", r"spamassassin score", r"rejecting banned content",
        r"is spam\b", r"- spam\b", r"classification as bulk", r"bulk e-?mail",
        r"mail rejete\. mail rejected\. .{0,20}506",  # Orange's code for spam content
    )),
    ("authfailure", (
        r"\bdmarc\b", r"\bspf\b", r"\bdkim\b", r"sender policy framework",
        r"authentication checks? failed", r"unauthenticated email", r"does not have authentication information",
        r"required authentication level", r"authentication requirements", r"sender is unauthenticated",
    )),
    ("requireptr", (
        r"reverse dns", r"reverse lookup", r"\bptr\b", r"\brdns\b", r"cannot find your hostname",
        r"cannot resolve your address", r"ip name lookup failed", r"mismatches client ip",
        r"unverifyable sending ips", r"unresolvable relay host name", r"no reverse",
        r"client host name unknown",
    )),
    ("notcompliantrfc", (
        r"not rfc ?\d{3,4} compliant", r"rfcmessagenoncompliant", r"multiple .{0,30}addresses in from",
        r"multiple [a-z-]{2,20} headers", r"duplicate header",
    )),
    ("badreputation", (
        r"reputation", r"unexpected volume or user complaints",
    )),
    ("speeding", (
        r"receiving mail at a rate", r"sending rate", r"rate limit", r"rate-limit", r"too fast",
        r"try again slower", r"too many (?:messages|emails|mails) .{0,30}(?:hour|minute|second|day)",
        r"sent to too many recipients", r"(?:daily|hourly|sending) (?:message |relay |mail |e-?mail )?(?:quota|limit)",
    )),
    ("toomanyconn", (
        r"too many (?:connections|concurrent|sessions|smtp sessions|simultaneous)", r"connection limit",
        r"frequency limit", r"too many recipients", r"too many errors from your ip", r"trop de connexions",
        r"maximum connection",
    )),
    ("securityerror", (
        r"smtp authentication", r"without authentication", r"authentication (?:is )?required",
        r"unauthenticated senders", r"authentication credentials invalid", r"must authenticate",
        r"not authorized to send mail",
    )),
    ("norelaying", (
        r"relay(?:ing)? (?:access )?(?:denied|not permitted|prohibited|not allowed)",
        r"not (?:permitted|allowed|configured) to relay", r"unable to relay", r"(?:we do not|cannot) relay",
        r"no relaying", r"as a relay", r"insecure mail relay", r"not an open relay",
        r"email address is not verified", r"not local host", r"not a gateway",
    )),
    ("mailererror", (
        r"procmail", r"maildrop", r"mailer error", r"command (?:died|failed|output)", r"pipe to \|",
        r"\|\| exit",
    )),
    ("exceedlimit", (
        r"limit set by recipient", r"administrative limit", r"recipsizelimit",
        r"too large for this recipient", r"header size exceeds",
    )),
    ("mailboxfull", (
        r"mailbox (?:is |was |would be )?full", r"mailbox size limit", r"mail ?(?:box|folder) .{0,20}(?:full|exceeded)",
        r"full mailbox", r"over ?quota", r"quota (?:exceeded|violation|full)", r"exceeds? (?:the )?(?:user'?s? |mailbox |his |her |their )?quota",
        r"(?:disk|storage|mailbox|maildir|mail) quota", r"exceeded (?:storage|quota)",
        r"(?:user|recipient)'?s? (?:mailbox|space|mail ?folder) (?:is full|has been used up)",
        r"too much mail data", r"too many messages on the server", r"boite du destinataire pleine",
        r"not enough (?:disk )?space", r"mailbox exceeds",
    )),
    ("mesgtoobig", (
        r"message (?:is )?too (?:big|large)", r"message (?:file )?too big", r"message size exceeds",
        r"(?:message )?size limit", r"exceeds? (?:the )?(?:maximum|fixed) (?:message )?size",
        r"maximum (?:inbound |incoming )?message size", r"line limit exceeded", r"taille limite",
        r"message length exceeds",
    )),
    ("systemfull", (
        r"mail system full", r"system storage", r"insufficient (?:disk|system) (?:space|storage)",
        r"disk full", r"out of disk space", r"no space left",
    )),
    ("contenterror", (
        r"8-bit data", r"headers? too large", r"header size", r"mime (?:complexity|headers)",
        r"invalid mime", r"media error", r"binary content", r"unnecessary base64",
        r"message content or media",
    )),
    ("hasmoved", (
        r"has moved", r"has been replaced by", r"no longer on (?:this )?server", r"not our customer",
        r"address (?:has )?changed", r"user has changed",
    )),
    # Our sender's address named outright: above the domain and mailbox rows.
    ("rejected", (
        r"sender domain (?:must|does not|doesn'?t|is empty|not found|invalid|is invalid)",
        r"domain of sender", r"sender address (?:rejected|invalid|not allowed)", r"unroutable sender",
    )),
    ("notaccept", (
        r"does not accept mail", r"null mx", r"doesn'?t receive e-?mail", r"accepts no mail",
        r"no mx (?:record )?found", r"mx or srv record indicated no smtp service",
        r"couldn'?t find a mail exchanger", r"mail receiving disabled", r"not accepting network messages",
        r"no route for current request",
    )),
    ("networkerror", (
        r"malformed (?:or unexpected )?name server reply", r"not found, try again",
        r"dns (?:error|query failed)", r"host name lookup failure",
        r"no route to host", r"(?:host|network) is unreachable", r"mail (?:forwarding )?loop",
        r"routing loop", r"too many hops", r"hop count exceeded", r"message looping",
        r"forwarding loop", r"unable to resolve route",
    )),
    ("hostunknown", (
        r"host (?:or domain name )?not found", r"host \S{1,100} not found", r"unknown host",
        r"[a-z0-9]\.[a-z]{2,20}\.? (?:does not|doesn'?t) exist", r"host unknown", r"no such domain",
        r"domain (?:name )?not found", r"domain (?:does not|doesn'?t) exist", r"unknown domain",
        r"unroutable address", r"unrouteable", r"illegal host", r"name or service not known",
        r"domain must exist", r"domain may not exist", r"couldn'?t find any host", r"nxdomain",
        r"bad destination system", r"domain is not reachable", r"host unreachable",
    )),
    ("networkerror", (
        r"name service error", r"name server",
    )),
    ("suspend", (
        r"(?:account|mailbox|user|recipient) (?:is |has been |was )?(?:currently |temporarily |temporary )?"
        r"(?:disabled|suspended|inactive|deactivated|frozen|locked|blocked|terminated|discontinued)",
        r"disabled (?:recipient|account|mailbox|user)", r"inactive (?:account|user|mailbox)",
        r"temporar(?:il)?y locked", r"recipient suspend", r"user suspended", r"archived recipient",
        r"compte du destinataire est bloque", r"account (?:expired|locked)", r"expired account",
        r"disabled or discontinued",
    )),
    ("filtered", (
        r"message filtered", r"user reject", r"refuses? to receive", r"rejected due to user rules",
        r"blocked by the recipient", r"only accepting mail from", r"recipient preferences",
        r"is not accepting any mail", r"account is protected by", r"content filter",
        r"filtered by", r"restricted sms",
    )),
    ("policyviolation", (
        r"policy violation", r"policy reasons", r"denied by policy", r"protocol violation",
        r"header error", r"organization(?:al)? (?:policy|settings)", r"host network not allowed",
        r"not accepting mail with", r"illegal attachment", r"members-only", r"closed mailing list",
        r"mass mailer", r"low priority", r"security policies", r"rejected by organization",
        r"containing images or other attachments",
    )),
    ("userunknown", (
        r"user unknown", r"unknown user", r"no such (?:user|mailbox|recipient|person|address|account)",
        r"(?:user|mailbox|recipient|address|account|addressee) (?:does not|doesn'?t|not) exists?",
        r"(?:user|mailbox|recipient|address|addressee) (?:is )?unknown",
        r"unknown (?:recipient|mailbox|address|local[- ]?part|e-?mail address|alias)",
        r"invalid (?:recipient|mailbox|address|user|account)", r"not a valid (?:user|mailbox|recipient|address)",
        r"(?:user|mailbox|recipient|address|account|addressee) (?:was )?not found", r"recipientnotfound",
        r"(?:user|recipient) not (?:known|listed|local|active)", r"is not a known user",
        r"(?:bad|illegal) (?:destination mailbox|recipient)", r"no (?:mailbox|mail box|account) (?:by that name|here|found|available)",
        r"mailbox (?:is )?(?:currently )?unavail(?:able|iable)", r"mailbox not present", r"address not present",
        r"user doesn'?t have a", r"account that you tried to reach does not exist",
        r"address couldn'?t be found", r"recipient name is not recognized", r"badrcptto",
        r"validrcptto", r"no one at this address", r"non-?existent (?:user|recipient|address)",
        r"address (?:invalid|rejected: (?:invalid|unknown|userunknown))", r"not a local address",
        r"mailbox (?:invalid|does not exist)", r"no mailbox", r"user missing home directory",
        r"utilisateur inconnu", r"no existe", r"not listed in (?:domino|the directory|public name)",
        r"addressee unknown", r"no valid recipients", r"delivery userid",
    )),
    ("rejected", (
        r"sender (?:address |email address |domain )?(?:rejected|denied|not allowed|blacklisted|invalid|verify failed)",
        r"rejected sender", r"domain of sender", r"sender verif", r"invalid sender", r"envelope sender",
        r"bogus mail from", r"null sender", r"empty (?:envelope )?senders?", r"sender was rejected",
        r"returned mail not accepted", r"registered gateway user", r"not allowed to post",
        r"send mail as", r"different address or alias", r"unroutable sender",
        r"address that has been blacklisted", r"email address has been blacklisted", r"backscatter",
        r"\bbatv\b", r"third-party dsns", r"sender is (?:spammer|in my black list)",
        r"mail from not owned", r"sender not pre-approved", r"unsigned dsn",
        r"fully qualified email address required", r"access denied \(in reply to mail from",
    )),
    ("blocked", (
        r"blacklist", r"black list", r"block ?list", r"blocked (?:using|by|for)", r"dnsbl", r"\brbl\b",
        r"spamhaus", r"spamcop", r"client host (?:\S{1,200} )?(?:rejected|blocked)",
        r"helo command rejected", r"not allowed to connect", r"connection refused by",
        r"connection (?:dropped|was dropped)", r"reset by peer",
        r"smtp server of your isp", r"dynamic ip", r"\bips? .{0,50}(?:blocked|listed|banned|bloquee)",
        r"ip (?:address )?(?:is )?(?:blocked|listed|blacklisted|banned)", r"bad sender ip", r"sending ip",
        r"invalid ip for sending", r"may not be mail exchanger", r"not accepting connections",
        r"service not available, closing", r"blocked for abuse", r"go away", r"weren'?t sent",
        r"service refused, please try later", r"service refuse", r"your network", r"your ip",
        r"open proxy", r"abus detecte", r"confirm this mail server", r"no access from mail server",
        r"access from ip address", r"suspiciously like spammer", r"my name was rejected",
    )),
    ("spamdetected", (
        r"\bspam", r"unsolicited", r"bulk mail", r"junk mail",
    )),
    ("failedstarttls", (
        r"starttls", r"tls required but not supported", r"requiretls", r"(?:support|offer|advertise)s? (?:the )?(?:starttls|tls)",
    )),
    ("securityerror", (
        r"\btls\b", r"certificate", r"encryption", r"authentication (?:failure|failed)",
        r"verification failure", r"not subscribed to ses", r"not authorized",
    )),
    # A local delivery program failed (``X-Unix; 75``): its words outrank a delay
    # warning's boilerplate below.
    ("mailererror", (
        r"x-unix;",
    )),
    ("expired", (
        r"timed out", r"time ?out", r"message expired", r"delivery (?:time )?expired", r"envelope expired",
        r"retry time(?:out)? (?:exceeded|expired|not reached)", r"have been failing for",
        r"could not be delivered (?:for|within)", r"was not delivered within", r"giving up", r"gave up",
        r"undelivered after", r"unable to deliver (?:this message )?(?:in|after)", r"too long in (?:the )?queue",
        r"delivery attempts will continue", r"has been delayed", r"could not deliver for",
        r"not reachable within", r"after multiple retries", r"did not accept our requests to connect",
        r"server did not respond", r"delivery failed \d{1,4} attempts",
    )),
    ("networkerror", (
        r"lost connection", r"connection (?:reset|closed|refused)", r"could not connect",
        r"unable to connect", r"establish an smtp connection", r"\bdns\b", r"network",
        r"no answer from", r"connect to .{0,80} failed",
    )),
    ("systemerror", (
        r"system error", r"internal (?:server )?error", r"server error", r"local error",
        r"configuration error", r"misconfigured", r"config error", r"could not load drd",
        r"service currently unavailable", r"temporary local problem", r"interrupted system call",
        r"queue file write error", r"loops? back to myself", r"no mdb", r"mail system configuration",
        r"encountered an error while being processed", r"create user output file",
    )),
    ("syntaxerror", (
        r"syntax error", r"command unrecognized", r"unrecognized command", r"bad sequence",
        r"improper sequence", r"malformed address", r"invalid command", r"command not implemented",
    )),
    ("expired", (
        r"queue too long", r"in the queue too long",
    )),
    # Vague wordings: they count only when nothing above matched.
    ("userunknown", (
        r"recipient address rejected", r"address rejected", r"recipient (?:rejected|refused)",
        r"rcpt to .{0,40}(?:rejected|not accepted)", r"undeliverable address", r"not accepted here",
    )),
    ("blocked", (
        r"blocked", r"access denied", r"bloque",
    )),
    ("policyviolation", (
        r"policy", r"prohibited", r"not permitted",
    )),
)

_REGEX_CHARS = frozenset("\\[](){}?*+.|^$")
_BOUNDARY_RE = re.compile(r"\\b")
_ESCAPE_RE = re.compile(r"\\.(?:[?*+]|\{\d*,?\d*\})?")
_CLASS_RE = re.compile(r"\[[^\]]*\](?:[?*+]|\{\d*,?\d*\})?")
_GROUP_RE = re.compile(r"\([^()]*\)(?:[?*+]|\{\d*,?\d*\})?")
_QUANTIFIED_RE = re.compile(r"[^\x00\x01](?:[?*+]|\{\d*,?\d*\})")
_MARK_RE = re.compile(r"([\x00\x01])")
_LEADING_GROUP_RE = re.compile(r"\(\?:([a-z |]+)\)(?![?*{])")


def _anchors(phrase: str) -> tuple[str, ...]:
    """Literal strings one of which every match of ``phrase`` contains, each starting
    a word (the scanner looks only at word starts): the longest literal run
    (``(?:de|in)tected as spam`` -> ``as spam``, ``over ?quota`` -> ``over``), else the
    words of a leading group (``(?:bad|illegal) recipient`` -> ``bad``, ``illegal``);
    ``()`` if neither."""
    if _REGEX_CHARS.isdisjoint(phrase):  # plain words, as most phrases are
        best = _word_start(phrase, True)
        return (best,) if len(best) >= 2 else ()
    # Mark what is not literal: \b (a word starts there), other escapes, character
    # classes, groups (innermost first), quantified characters, wildcards.
    flat = _BOUNDARY_RE.sub("\x01", phrase)
    flat = _ESCAPE_RE.sub("\x00", flat)
    flat = _CLASS_RE.sub("\x00", flat)
    while "(" in flat:
        inner = _GROUP_RE.sub("\x00", flat)
        if inner == flat:
            break
        flat = inner
    flat = _QUANTIFIED_RE.sub("\x00", flat).replace(".", "\x00")
    runs = []
    safe = True  # the text of the run starts a word: start of phrase, or after \b
    for piece in _MARK_RE.split(flat):
        if piece in ("\x00", "\x01"):
            safe = piece == "\x01"
            continue
        runs.append(_word_start(piece, safe))
        safe = False
    best = max(runs, key=len, default="")
    if len(best) >= 2:
        return (best,)
    lead = _LEADING_GROUP_RE.match(phrase)
    return tuple(lead.group(1).split("|")) if lead else ()


def _word_start(run: str, safe: bool) -> str:
    """``run`` cut to begin at a word start: past its first word when the run itself
    may begin inside a word of the text, then past leading spaces and punctuation;
    trailing spaces dropped."""
    if not safe and run[:1].isalnum():
        cut = next((i for i, ch in enumerate(run) if not ch.isalnum()), len(run))
        run = run[cut:]
    if not run[:1].isalnum():
        run = run[next((i for i, ch in enumerate(run) if ch.isalnum()), len(run)):]
    return run.rstrip()


#: A rule: the row it belongs to, and its phrases joined into one pattern.
Rule = tuple[int, str]
#: Anchors by the first (up to) three characters of their first word.
Index = dict[str, tuple[tuple[str, int], ...]]


def _index() -> tuple[tuple[Rule, ...], Index, tuple[int, ...]]:
    """The rules (a row's phrases that share an anchor); the anchors that wake each
    rule, keyed for lookup by a word's first characters; rules with no anchor."""
    grouped: dict[tuple[str, int], list[str]] = {}
    for number, (_, phrases) in enumerate(_TABLE):
        for phrase in phrases:
            for anchor in _anchors(phrase) or ("",):
                grouped.setdefault((anchor, number), []).append(phrase)
    rules: list[Rule] = []
    index: dict[str, list[tuple[str, int]]] = {}
    always: list[int] = []
    for (anchor, number), members in grouped.items():
        rules.append((number, "|".join(members)))
        if anchor:
            index.setdefault(_key(anchor), []).append((anchor, len(rules) - 1))
        else:
            always.append(len(rules) - 1)
    return tuple(rules), {key: tuple(found) for key, found in index.items()}, tuple(always)


def _key(anchor: str) -> str:
    """The lookup key of an anchor: its first word's first three characters."""
    first = _WORD_RE.match(anchor)
    return first.group()[:3] if first else anchor[:1]


_WORD_RE = re.compile(r"[a-z0-9]+")
_WORD_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789")
_RULES, _INDEX, _ALWAYS = _index()
#: Rules compiled on first use: a process that classifies one bounce compiles a few.
_COMPILED: dict[int, re.Pattern[str]] = {}
#: What each word of a text wakes (see :func:`_wakes`), remembered: bounces share
#: their vocabulary, so a batch looks most words up once. Most words wake nothing:
#: those are only remembered as such.
_WAKES: dict[str, tuple[frozenset[int], tuple[tuple[str, int], ...]]] = {}
_INERT: set[str] = set()
_MAX_WORDS = 8192
#: Each ASCII character that cannot be part of a word, as a space.
_SPACED = [char if char in _WORD_CHARS else " " for char in map(chr, range(128))]


def match(text: str) -> str:
    """The reason of the highest row with a phrase in ``text`` (lower case), or ``""``.

    Each word of ``text`` looks up the anchors (literal words every match of a phrase
    contains, starting a word) that begin like it; only the rules whose anchor is
    really there run their regular expression, highest row first.
    """
    woken = set(_ALWAYS)
    for word in _words(text) - _INERT:
        rules, anchors = _WAKES.get(word) or _wakes(word)
        woken.update(rules)
        for anchor, rule in anchors:
            if rule not in woken:
                index = text.find(anchor)
                if index >= 0 and (index == 0 or text[index - 1] not in _WORD_CHARS or _at_word_start(text, anchor)):
                    woken.add(rule)
    for rule in sorted(woken):
        if _pattern(rule).search(text):
            return _TABLE[_RULES[rule][0]][0]
    return ""


def _words(text: str) -> set[str]:
    """The distinct words (runs of ``[a-z0-9]``) of ``text``."""
    if text.isascii():
        return set(text.translate(_SPACED).split())
    return set(_WORD_RE.findall(text))


def _wakes(word: str) -> tuple[frozenset[int], tuple[tuple[str, int], ...]]:
    """What ``word`` (a run of ``[a-z0-9]``) wakes wherever it stands: the rules of the
    one-word anchors it starts with, and the longer anchors whose first word it is
    (still to be found in the text)."""
    rules: set[int] = set()
    anchors: list[tuple[str, int]] = []
    for key in {word[:3], word[:2], word[:1]}:
        for anchor, rule in _INDEX.get(key, ()):
            if _WORD_CHARS.issuperset(anchor):
                if word.startswith(anchor):
                    rules.add(rule)
            elif _WORD_RE.match(anchor).group() == word:  # type: ignore[union-attr]  # keyed by it
                anchors.append((anchor, rule))
    if not rules and not anchors:
        if len(_INERT) >= _MAX_WORDS:
            _INERT.clear()
        _INERT.add(word)
        return frozenset(), ()
    if len(_WAKES) >= _MAX_WORDS:
        _WAKES.clear()
    found = _WAKES[word] = (frozenset(rules), tuple(anchors))
    return found


def _at_word_start(text: str, anchor: str) -> bool:
    """Whether ``anchor`` appears in ``text`` where a word starts."""
    index = text.find(anchor)
    while index >= 0:
        if index == 0 or text[index - 1] not in _WORD_CHARS:
            return True
        index = text.find(anchor, index + 1)
    return False


def _pattern(rule: int) -> re.Pattern[str]:
    pattern = _COMPILED.get(rule)
    if pattern is None:
        pattern = _COMPILED[rule] = re.compile(_RULES[rule][1])
    return pattern
