"""How mail systems word each failure: the table :mod:`bouncefilter.classify.phrases` matches.

One ordered table of :class:`Row` objects: a reason, where its wordings come from, and
the wordings. The first row with a wording in the diagnostic wins, so a row stands above
the rows it must beat: specific wordings high up, vague ones at the bottom
(``recipient address rejected`` says userunknown only when nothing more precise follows
it, as in ``Recipient address rejected: Policy violation``).

A wording is written as the words appear, lower case, one space between words, in the
syntax of :mod:`re` where it needs more (a class, an optional letter, a bounded gap such
as ``.{0,40}``, never a nested quantifier). The matcher reads it generously:

- between any two words the text may hold one inserted item: an address, a name in
  quotes, angle or square brackets (``user <a@example.com> unknown``, ``mailbox
  "info" does not exist``, ``recipient [x] rejected``);
- ``{user}`` stands for any of the nouns mail systems use for a mailbox (user, recipient,
  rcpt, account, mailbox, address, addressee, e-mail address, local part, alias, ...)
  and ``{exist}`` for the ways of saying it does not exist (does not, doesn't, not,
  no longer exist(s)); see :data:`MACROS`.

Every row names its sources (keys of :data:`SOURCES`): a standard, a provider's or a
vendor's published error text, an MTA's own message text, or sisimai's per-reason lists,
read as facts. A wording that only one bounce needs and no source backs does not belong
here.
"""

from __future__ import annotations

from typing import NamedTuple

#: Where wordings come from.
SOURCES = {
    "rfc3463": "RFC 3463 and the IANA SMTP enhanced status code registry (RFC 5248): the codes' titles",
    "rfc5321": "RFC 5321 reply texts; RFC 7504 and RFC 7505 (null MX)",
    "postfix": "Postfix's own texts: smtpd(8) restrictions, smtp(8), local(8), virtual(8), bounce(8)",
    "exim": "Exim's own texts: routers, transports, retry, ACL messages, the bounce template",
    "sendmail": "Sendmail's own texts: srvrsmtp.c, deliver.c, daemon.c, mail.local",
    "qmail": "qmail's own texts: qmail-remote, qmail-local, qmail-smtpd, vpopmail's vdelivermail",
    "courier": "Courier MTA and maildrop texts",
    "opensmtpd": "OpenSMTPD's own texts",
    "exchange": "Microsoft Exchange texts and enhanced codes (RESOLVER.*, STOREDRV.*)",
    "microsoft": "Microsoft 365 and Outlook.com NDR documentation (5.x.x codes, S3150, SC/DY codes)",
    "domino": "HCL/IBM Lotus Domino router texts",
    "zimbra": "Zimbra and MDaemon texts",
    "gmail": "Google's SMTP error reference for Gmail and Google Workspace",
    "yahoo": "Yahoo and AOL postmaster SMTP error codes",
    "apple": "Apple iCloud mail server error texts",
    "gmx": "GMX and web.de (1&1 / United Internet) error texts",
    "orange": "Orange / Wanadoo error texts (OFR codes)",
    "comcast": "Comcast and Cox postmaster error codes",
    "mailru": "Mail.ru error texts",
    "yandex": "Yandex error texts",
    "zoho": "Zoho Mail error texts",
    "qq": "QQ Mail and NetEase (163.com, 126.com) error texts",
    "proofpoint": "Proofpoint error texts",
    "mimecast": "Mimecast SMTP error code documentation",
    "barracuda": "Barracuda ESG texts",
    "cisco": "Cisco Secure Email (IronPort) texts",
    "trendmicro": "Trend Micro (ERS, IMSS) texts",
    "sophos": "Sophos Email texts",
    "ses": "Amazon SES texts and bounce types (bounceType, bounceSubType)",
    "kddi": "KDDI / au (ezweb.ne.jp) notices and their X-SPASIGN spam-filter header",
    "fml": "fml mailing list manager notices",
    "dnsbl": "DNS block list operators (Spamhaus, SpamCop, Barracuda BRBL) texts",
    "aiosmtpd": "aiosmtpd and Python's smtpd: their replies (552 Error: Too much mail data)",
    "sisimai": "sisimai's per-reason message lists (lib/sisimai/reason/*), read as facts",
}

class Macro(NamedTuple):
    """A named part of a wording: its pattern, and the words a match of it starts with."""

    pattern: str
    starts: tuple[str, ...]


#: Named parts a wording may use, written ``{name}``.
MACROS = {
    "user": Macro(
        r"(?:e-?mail |mail |recipient |destination |local |target |virtual )?"
        r"(?:user(?: ?name| ?id)?|recipient|rcpt|account|mail ?box|address(?:ee)?|local ?part"
        r"|person|alias|e-?mail)s?",
        ("e", "email", "mail", "recipient", "destination", "local", "target", "virtual", "user", "rcpt",
         "account", "address", "person", "alias"),
    ),
    "exist": Macro(
        r"(?:does not|doesn'?t|did not|do not|don'?t|not|no longer|does no longer) exists?",
        ("does", "doesn", "did", "do", "don", "not", "no"),
    ),
}


class Row(NamedTuple):
    """Wordings that say ``reason``, with the keys of their sources."""

    reason: str
    sources: tuple[str, ...]
    wordings: tuple[str, ...]


TABLE: tuple[Row, ...] = (
    # Vendors' code words, which a parser reads from a structured field and hands on as
    # ``vendor:word`` (never found in a diagnostic's text).
    Row("userunknown", ("ses", "exchange"), (
        r"ses:noemail", r"ses:suppressed", r"msexch:000c05a6",
    )),
    Row("mailboxfull", ("ses",), (r"ses:mailboxfull",)),
    Row("mesgtoobig", ("ses",), (r"ses:messagetoolarge",)),
    Row("contenterror", ("exchange",), (r"msexch:00050311", r"msexch:000502cc")),
    Row("filtered", ("kddi",), (r"x-spasign:ng",)),
    Row("rejected", ("gmail", "fml"), (r"googlegroups:refused", r"fml:non-member")),
    Row("syntaxerror", ("exim",), (r"exim:incorrectly-constructed",)),
    # The remote names the reason outright, whatever else the text says.
    Row("virusdetected", ("sisimai", "exim", "mimecast", "gmail"), (
        r"virus (?:detected|found)", r"infected with", r"contains? (?:a )?virus", r"malware",
        r"potentially executable attachment", r"executable (?:attachment|files are not allowed)",
        r"used by recent viruses", r"virus phishing", r"prohibited virus",
    )),
    Row("spamdetected", ("sisimai", "gmail", "mailru", "yandex", "orange", "qq", "cisco", "proofpoint"), (
        r"spam or virus", r"spam/virus", r"spam classification",
        r"(?:detected|classified|identified|scored|rejected|considered|flagged|marked) as (?:spam|junk|bulk)",
        r"spam (?:detected|blocked|refused|rejection|score|message|not accepted|content|check|filter)", r"dt:spm",
        r"looks? like spam", r"appears? to be (?:spam|unsolicited)", r"probable spam", r"suspicion of spam",
        r"suspected spam", r"high probability of spam", r"message content rejected", r"\bube\b",
        r"unsolicited (?:bulk|commercial|mail)", r"spam-like", r"mail content denied", r"unacceptable content",
        r"blocked by spamassassin", r"spamassassin score", r"rejecting banned content", r"rejecting mail content",
        r"is spam\b", r"- spam\b", r"classification as bulk", r"bulk e-?mail", r"dt:spm", r"spam points",
        r"mail rejete\. mail rejected\. .{0,20}506",  # Orange's code for spam content
        r"antispam checks", r"spam filtering engine", r"spamprofiler",
    )),
    Row("authfailure", ("sisimai", "gmail", "microsoft", "yahoo"), (
        r"\bdmarc\b", r"\bspf\b", r"\bdkim\b", r"sender policy framework",
        r"authentication checks? failed", r"unauthenticated (?:e-?mail|mail|message)", r"mail is unauthenticated",
        r"sender is unauthenticated", r"does not have authentication information", r"required authentication level",
        r"authentication requirements", r"5322\.from address", r"not pass (?:dmarc|spf|dkim)", r"mi:spf",
    )),
    Row("requireptr", ("sisimai", "postfix", "gmail", "mailru"), (
        r"reverse dns", r"reverse lookup", r"reverse hostname", r"\bptr\b", r"\brdns\b", r"cannot find your hostname",
        r"cannot resolve your address", r"ip name lookup failed", r"mismatches client ip",
        r"unverifyable sending ips", r"unresolvable relay host name", r"no reverse",
        r"client host name unknown", r"forward dns entry does not point",
    )),
    Row("notcompliantrfc", ("sisimai", "gmail"), (
        r"not rfc ?\d{3,4} compliant", r"rfcmessagenoncompliant", r"multiple .{0,30}addresses in from",
        r"multiple [a-z-]{2,20} headers", r"duplicate header", r"missing a valid address in from",
        r"no from: header", r"messages missing a valid", r"not rfc compliant", r"headers are not rfc",
    )),
    # A block list named outright: its listing, whatever the list is called.
    Row("blocked", ("dnsbl", "postfix", "barracuda", "proofpoint"), (
        r"blocked using", r"listed (?:at|on|in|by) .{0,60}(?:\bbl\b|dnsbl|rbl|blacklist|block ?list|spamhaus|spamcop)",
        r"helo command rejected", r"dt:rbl",
    )),
    Row("badreputation", ("sisimai", "microsoft", "cisco", "gmail", "yahoo"), (
        r"reputation", r"unexpected volume or user complaints",
    )),
    Row("speeding", ("sisimai", "gmail", "microsoft", "ses", "comcast"), (
        r"receiving mail at a rate", r"sending rate", r"rate limit", r"rate-limit",
        r"too fast", r"try again slower", r"too many (?:messages|emails|mails) .{0,30}(?:hour|minute|second|day)",
        r"sent to too many recipients", r"(?:daily|hourly|sending) (?:message |relay |mail |e-?mail )?(?:quota|limit)",
        r"throttl(?:ed|ing)", r"max emails per hour", r"per-hour message receive limit",
        r"unusual sending activity",
    )),
    Row("toomanyconn", ("sisimai", "sendmail", "microsoft", "mimecast", "orange"), (
        r"too many (?:connections|concurrent|sessions|smtp sessions|simultaneous)", r"connection limit",
        r"frequency limit", r"too many recipients", r"too many errors from your ip", r"trop de connexions",
        r"maximum (?:inbound )?connections?",
    )),
    Row("securityerror", ("sisimai", "postfix", "microsoft", "ses"), (
        r"smtp authentication", r"without authentication", r"authentication (?:is )?required",
        r"unauthenticated senders", r"authentication credentials invalid", r"must authenticate",
        r"not authorized to send mail", r"client was not authenticated", r"authrequired",
    )),
    Row("norelaying", ("sisimai", "postfix", "sendmail", "qmail", "exim", "microsoft"), (
        r"relay(?:ing)? (?:access )?(?:denied|not permitted|prohibited|not allowed|disallowed|refused)",
        r"relaying (?:of )?mail to .{0,80}(?:not allowed|denied|prohibited)",
        r"not (?:permitted|allowed|configured|authorized) to relay", r"unable to relay", r"(?:we do not|cannot|can'?t) relay",
        r"no relaying", r"as a relay", r"insecure mail relay", r"not an open relay",
        r"email address is not verified", r"not local host", r"not a gateway", r"list of allowed rcpthosts",
        r"we don'?t handle mail for", r"not configured to relay", r"relay access",
    )),
    Row("exceedlimit", ("rfc3463", "sisimai", "exchange"), (
        r"limit set by recipient", r"administrative limit", r"recipsizelimit",
        r"too large for this recipient", r"header size exceeds", r"message length exceeds",
    )),
    # Python's SMTP servers (aiosmtpd, smtpd) refuse data over their size limit so.
    Row("mesgtoobig", ("aiosmtpd",), (r"error: too much mail data",)),
    Row("mailboxfull", ("rfc3463", "sisimai", "postfix", "exim", "qmail", "courier", "gmail", "orange", "microsoft"), (
        r"mail ?box (?:is |was |would be )?(?:full|over ?quota)", r"mailbox size limit",
        r"mail ?(?:box|folder|dir) .{0,20}(?:full|exceeded|quota)",
        r"full mailbox", r"over ?quota", r"quota (?:exceeded|violation|full|reached)",
        r"exceeds? (?:the |its |their )?(?:user'?s? |mailbox |his |her |their |allowed |storage )?quota",
        r"(?:disk|storage|mailbox|maildir|mail|e-?mail|user) quota", r"exceeded (?:storage|quota)",
        r"(?:user|recipient)'?s? (?:mailbox|space|mail ?folder) (?:is full|has been used up)",
        r"{user} (?:is )?(?:full|over the quota)", r"(?:account|mailbox) (?:is )?(?:currently |temporarily )?full",
        r"too much mail data", r"too many messages on the server", r"boite du destinataire pleine",
        r"quotaexceeded", r"error writing message: file too large",
        r"not enough (?:disk |storage )?space", r"mailbox exceeds",
        r"exceeded (?:its |the )?(?:disk space|storage) (?:limit|allocation)",
    )),
    Row("mesgtoobig", ("rfc3463", "postfix", "sendmail", "exim", "gmail", "sisimai"), (
        r"message (?:is )?too (?:big|large)", r"message (?:file )?too big", r"message size (?:\d{1,12} )?exceeds",
        r"(?:message )?size limit", r"exceeds? (?:the )?(?:maximum|fixed|max) (?:allowed )?(?:message |mail )?size",
        r"maximum (?:inbound |incoming )?message size", r"line limit exceeded", r"taille limite",
        r"exceeded (?:the )?(?:maximum )?(?:inbound |incoming )?message size", r"mailsize limit",
        r"max message size",
    )),
    Row("systemfull", ("rfc3463", "sisimai", "sendmail"), (
        r"mail system full", r"system storage", r"insufficient (?:disk|system) (?:space|storage)",
        r"disk full", r"out of disk space", r"no space left",
    )),
    Row("mailererror", ("sisimai", "exim", "sendmail"), (
        r"procmail", r"maildrop: ", r"mailer error", r"command (?:died|failed|output)", r"pipe to \|",
        r"\|\| exit", r"transport returned \d{1,3}", r"program unavailable",
    )),
    Row("contenterror", ("rfc3463", "sisimai", "microsoft"), (
        r"8-bit data", r"headers? too large", r"header size", r"mime (?:complexity|headers)",
        r"invalid mime", r"media error", r"binary content", r"unnecessary base64",
        r"message content or media", r"lines too long", r"line too long", r"message is malformed", r"corrupt message", r"invalidcontent",
    )),
    Row("hasmoved", ("rfc3463", "rfc5321", "sisimai"), (
        r"has moved", r"has been replaced by", r"no longer on (?:this )?server", r"not local; please try",
        r"address (?:has )?changed", r"user has changed",
    )),
    # Our sender's address named outright: above the domain and mailbox rows.
    Row("rejected", ("postfix", "sendmail", "exim", "sisimai"), (
        r"sender domain (?:must|does not|doesn'?t|is empty|not found|invalid|is invalid)",
        r"domain of sender", r"sender address (?:rejected|invalid|not allowed)", r"unroutable sender",
        r"sender verify failed", r"sender verification",
    )),
    Row("notaccept", ("rfc5321", "rfc3463", "sendmail", "qmail", "apple", "yahoo", "sisimai"), (
        r"does not accept mail", r"null mx", r"doesn'?t receive e-?mail", r"accepts no mail",
        r"no mx (?:record )?found", r"mx or srv record indicated no smtp service",
        r"couldn'?t find a mail exchanger", r"mail receiving disabled", r"not accepting network messages",
        r"no route for current request",
    )),
    # The MTA says outright that the message expired: above the causes it names with it.
    Row("expired", ("rfc3463", "microsoft", "opensmtpd", "sisimai"), (
        r"message expired", r"delivery (?:time )?expired", r"envelope expired",
    )),
    Row("networkerror", ("postfix", "exim", "sendmail", "qmail", "microsoft", "sisimai"), (
        r"malformed (?:or unexpected )?name server reply", r"not found, try again",
        r"dns (?:error|query failed|lookup failed|records for the destination)", r"host name lookup failure",
        r"temporary failure in name resolution", r"no route to host", r"(?:host|network) is unreachable",
        r"mail (?:forwarding )?loop", r"routing loop", r"too many hops", r"hop count exceeded",
        r"message looping", r"forwarding loop", r"unable to resolve route", r"this message is looping",
        r"loop detected", r"mx lookup", r"lookup did not complete", r"connection died",
        # The connection itself was refused: the cause, above the words of giving up on it.
        r"connection refused",
    )),
    Row("hostunknown", ("rfc3463", "postfix", "exim", "sendmail", "qmail", "sisimai"), (
        r"host (?:or domain name )?not found", r"host \S{1,100} not found", r"unknown host",
        r"[a-z0-9]\.[a-z]{2,20}\.? (?:does not|doesn'?t) exist", r"host unknown", r"no such domain",
        r"domain (?:name )?not found", r"domain (?:does not|doesn'?t) exist", r"unknown domain",
        r"unroutable address", r"unrouteable", r"illegal host", r"name or service not known",
        r"domain must exist", r"domain may not exist", r"couldn'?t find any host", r"nxdomain",
        r"bad destination system", r"domain is not reachable", r"host unreachable",
        r"all relevant mx records point to non-existent hosts", r"lookups? failed permanently",
        r"mail domain .{0,40}(?:is )?unknown", r"non-?existent ?domain",
        r"no route found to domain",
    )),
    Row("networkerror", ("postfix", "sendmail"), (
        r"name service error", r"name server",
    )),
    Row("suspend", ("rfc3463", "sisimai", "gmail", "qq", "mailru", "qmail"), (
        r"(?:account|mail ?box|user|recipient|rcpt) (?:is |has been |was )?(?:currently |temporarily |temporary |permanently )?"
        r"(?:disabled|suspended|inactive|deactivated|frozen|locked|blocked|terminated|discontinued|closed|expired)",
        r"(?:disabled|inactive|suspended|deactivated|locked|closed|expired|frozen) (?:recipient|account|mailbox|user)",
        r"temporar(?:il)?y locked", r"recipient suspend", r"user suspended", r"archived recipient",
        r"compte du destinataire est bloque", r"disabled or discontinued", r"boite du destinataire archivee",
        r"not accepting messages", r"user is terminated",
    )),
    Row("filtered", ("sisimai", "yahoo", "exchange", "mailru"), (
        r"message filtered", r"user reject", r"refuses? to receive", r"rejected due to user rules",
        r"blocked by the recipient", r"only accepting mail from", r"recipient preferences",
        r"is not accepting any mail", r"account is protected by", r"content filter",
        r"filtered by", r"restricted sms", r"rst\.notauthorized", r"extended inactivity",
        r"restrictedtorecipients",
    )),
    Row("policyviolation", ("sisimai", "mimecast", "yahoo", "gmail", "microsoft", "apple"), (
        r"policy violation", r"policy reasons", r"denied by policy", r"protocol violation",
        r"header error", r"organization(?:al)? (?:policy|settings)", r"host network not allowed",
        r"not accepting mail with", r"illegal attachment", r"members-only", r"closed mailing list",
        r"mass mailer", r"low priority", r"security polic(?:y|ies)", r"rejected by organization",
        r"containing images or other attachments", r"anti-spoofing", r"content presents a potential", r"has a policy that prohibited",
        r"due to (?:local|administrative) policy", r"policy restrictions", r"does not allow external forwarding",
    )),
    Row("userunknown", ("rfc3463", "rfc5321", "postfix", "exim", "sendmail", "qmail", "courier", "exchange",
                        "microsoft", "gmail", "yahoo", "apple", "mailru", "yandex", "zoho", "qq", "orange",
                        "domino", "comcast", "sisimai"), (
        r"{user} unknown", r"unknown {user}", r"no such {user}", r"{user} {exist}",
        r"{user} (?:was |is |could )?not (?:be )?found", r"{user} (?:is )?(?:not|no longer) (?:known|listed|local|active|valid)",
        r"{user} (?:is |was )?invalid", r"invalid {user}", r"not a (?:valid|known) {user}", r"is not a known user",
        r"bad {user}", r"(?:bad|illegal) (?:destination mailbox|recipient)", r"non-? ?existe?nt {user}",
        r"no {user} (?:by that name|here|found|available|with that name|named)", r"there is no {user}",
        r"recipientnotfound", r"recip ?notfound", r"resolver\.adr\.", r"mailbox (?:is )?(?:currently )?unavail(?:able|iable)",
        r"mailbox not present", r"address not present", r"user doesn'?t have a", r"doesn'?t have an? .{1,40} account",
        r"account that you tried to reach (?:does not exist|is not)", r"{user} (?:you tried to reach|you are trying to reach) (?:does not|doesn'?t) exist",
        r"address couldn'?t be found", r"recipient name is not recognized", r"badrcptto", r"badrecipientto",
        r"validrcptto", r"no one at this address", r"no such person", r"not a local address",
        r"address (?:rejected: (?:invalid|unknown|userunknown))", r"mailbox (?:invalid|does not exist)", r"no mailbox",
        r"user missing home directory", r"utilisateur inconnu", r"no existe", r"not listed in (?:domino|the directory|public name)",
        r"not listed in (?:the )?(?:domino )?directory", r"no valid recipients", r"delivery userid",
        r"adresse d au moins un destinataire invalide", r"nessun utente",
        r"wrong or no longer valid", r"can'?t accept user", r"destination addresses were unknown",
        r"not in my validrcptto", r"was not found in the .{1,40} (?:directory|system|database)",
        r"e-?mail name is not found", r"invalid-recipient", r"no longer accepts mail", r"rcpt .{0,40}(?:unknown|not found|does not exist)",
        r"not our customer",
    )),
    Row("rejected", ("sisimai", "postfix", "exim", "sendmail", "qmail", "mimecast", "microsoft", "zimbra"), (
        r"sender (?:address |email address |domain )?(?:rejected|denied|not allowed|blacklisted|invalid|verify failed|blocked)",
        r"rejected sender", r"domain of sender", r"sender verif", r"invalid sender", r"envelope sender",
        r"bogus mail from", r"null sender", r"empty (?:envelope )?senders?", r"sender was rejected",
        r"returned mail not accepted", r"registered gateway user", r"not allowed to post",
        r"send mail as", r"different address or alias", r"unroutable sender",
        r"address that has been blacklisted", r"email address has been blacklisted", r"backscatter",
        r"\bbatv\b", r"third-party dsns", r"sender is (?:spammer|in my black list)",
        r"mail from not owned", r"sender not pre-approved", r"unsigned dsn",
        r"fully qualified email address required", r"access denied \(in reply to mail from",
        r"administrative prohibition", r"envelope blocked", r"sender not (?:in|on) .{0,30}(?:allowed|list)",
        r"delivery not authorized, message refused", r"bad outbound sender", r"blocked senders", r"recipient'?s list of senders", r"sendasdenied",
        r"mi:imf",
    )),
    Row("blocked", ("sisimai", "dnsbl", "postfix", "sendmail", "qmail", "microsoft", "gmail", "yahoo", "apple",
                    "orange", "comcast", "mailru", "proofpoint", "barracuda"), (
        r"blacklist", r"black list", r"block ?list", r"blocked (?:using|by|for|-)", r"dnsbl", r"\brbl\b",
        r"spamhaus", r"spamcop", r"client host (?:\S{1,200} )?(?:rejected|blocked)",
        r"helo command rejected", r"not allowed to connect",
        r"connection (?:dropped|was dropped)", r"reset by peer",
        r"smtp server of your isp", r"dynamic ips?", r"\bips? .{0,50}(?:blocked|listed|banned|bloquee)",
        r"ip (?:address )?(?:is )?(?:blocked|listed|blacklisted|banned)", r"bad sender ip", r"sending ip",
        r"invalid ip for sending", r"may not be mail exchanger", r"not accepting connections",
        r"service not available, closing", r"blocked for abuse", r"go away", r"weren'?t sent",
        r"service refused, please try later", r"service refuse", r"your network", r"your ip",
        r"open proxy", r"abus detecte", r"confirm this mail server", r"no access from mail server",
        r"access from ip address", r"suspiciously like spammer", r"my name was rejected",
        r"after initial connection", r"\b(?:sc|dy|ou)-00\d\b", r"\bs3150\b", r"\bbl000\d{3}\b", r"\[bl\d{2}\]", r"\[tss?\d{2}\]",
        r"not authorized to send email directly", r"refused to talk to me", r"listed (?:at|on|in) ",
        r"greeting failed", r"banned sender", r"mail from .{1,80} refused",
    )),
    Row("spamdetected", ("sisimai",), (
        r"\bspam", r"unsolicited", r"bulk mail", r"junk mail",
    )),
    Row("failedstarttls", ("rfc3463", "sisimai", "gmail"), (
        r"starttls", r"tls required but not supported", r"requiretls", r"(?:support|offer|advertise)s? (?:the )?(?:starttls|tls)",
        r"must issue a starttls", r"tls (?:is )?required",
    )),
    Row("securityerror", ("sisimai", "postfix", "ses"), (
        r"\btls\b", r"certificate", r"encryption", r"authentication (?:failure|failed)",
        r"verification failure", r"not subscribed to ses", r"not authorized",
    )),
    # A local delivery program failed (``X-Unix; 75``): its words outrank a delay
    # warning's boilerplate below.
    Row("mailererror", ("sendmail", "postfix"), (
        r"x-unix;",
    )),
    Row("expired", ("rfc3463", "postfix", "exim", "sendmail", "qmail", "opensmtpd", "exchange", "sisimai"), (
        r"timed out", r"time ?out", r"message expired", r"delivery (?:time )?expired", r"envelope expired",
        r"retry time(?:out)? (?:exceeded|expired|not reached)", r"have been failing for",
        r"could not be delivered (?:for|within)", r"was not delivered within", r"giving up", r"gave up",
        r"undelivered after", r"unable to deliver (?:this message )?(?:in|after)", r"too long in (?:the )?queue",
        r"delivery attempts will continue", r"has been delayed", r"could not deliver for", r"cannot send message for",
        r"not reachable within", r"after multiple retries", r"did not accept our requests to connect",
        r"server did not respond", r"delivery failed \d{1,4} attempts", r"could not send message for",
        r"grey ?list(?:ed|ing)?", r"gray ?list(?:ed|ing)?",
    )),
    Row("networkerror", ("postfix", "exim", "sendmail", "qmail", "microsoft"), (
        r"lost connection", r"connection (?:reset|closed|refused)", r"could not connect",
        r"unable to connect", r"establish an? smtp connection", r"\bdns\b", r"network",
        r"no answer from", r"connect to .{0,80} failed", r"read error",
    )),
    Row("systemerror", ("rfc3463", "postfix", "sendmail", "exim", "microsoft", "sisimai"), (
        r"system error", r"internal (?:server )?error", r"server error", r"local error",
        r"configuration error", r"misconfigured", r"config error", r"could not load drd",
        r"service currently unavailable", r"temporary local problem", r"interrupted system call",
        r"queue file write error", r"loops? back to myself", r"loops back to me", r"no mdb", r"mail system configuration",
        r"encountered an error while being processed", r"create user output file", r"incorrectly configured",
        r"storedrv\.", r"resources are temporarily", r"temporary system problem",
        r"service is currently unavailable",
    )),
    Row("syntaxerror", ("rfc5321", "rfc3463", "postfix", "sendmail"), (
        r"syntax error", r"command unrecognized", r"unrecognized command", r"bad sequence",
        r"improper sequence", r"malformed address", r"invalid command", r"command not implemented",
        r"improper use of smtp command pipelining", r"unbalanced",
    )),
    Row("expired", ("qmail",), (
        r"queue too long",
    )),
    # Vague wordings: they count only when nothing above matched.
    Row("userunknown", ("postfix", "sisimai"), (
        r"recipient address rejected", r"address rejected", r"{user} (?:rejected|refused|not accepted)",
        r"rcpt to .{0,40}(?:rejected|not accepted)", r"undeliverable address", r"not accepted here",
        r"unknown or illegal alias", r"recipients? (?:was |were )?undeliverable", r"rejected recipients",
    )),
    Row("blocked", ("sisimai", "proofpoint", "barracuda"), (
        r"blocked", r"access denied", r"bloque",
    )),
    Row("policyviolation", ("rfc3463", "sisimai"), (
        r"policy", r"prohibited", r"not permitted",
    )),
)
