"""What an emailed request says, read as mail clients write it: the text from `text/plain`
(or from the HTML part when there is none), `format=flowed` lines joined (RFC 3676), the
quoted message a reply carries and the sender's signature left out, field names in any case
and spacing, numbers in the sender's grouping, and the attached files with the evidence kind
each is for."""

from __future__ import annotations

import re
from dataclasses import dataclass
from email.message import EmailMessage
from html.parser import HTMLParser

from babel.numbers import NumberFormatError, parse_decimal
from django.http import QueryDict

from waiverdesk.core.formatting import DEFAULT_LOCALE

from .request_form import SCOPE_FIELDS

NUMBERS = frozenset({*SCOPE_FIELDS, "financials.list_value", "financials.concession",
                     "financials.revenue_effect", "outcomes.target"})  # fmt: skip
ATTACHED = re.compile(r"(?i)\b(see |in the )?attach")
FIELD_NAME = re.compile(r"[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)?")


class UnknownCharset(Exception):
    def __init__(self, charset: str):
        super().__init__(charset)
        self.charset = charset


def text_of(message: EmailMessage) -> str:
    """The message's own words: its plain text (or its HTML as text), without the quoted
    message of a reply or the signature."""
    part = message.get_body(preferencelist=("plain", "html"))
    if part is None:
        return ""
    try:
        content = part.get_content()
    except LookupError as unknown:
        raise UnknownCharset(part.get_content_charset() or "?") from unknown
    if part.get_content_subtype() == "html":
        content = html_to_text(content)
    elif part.get_param("format", "").lower() == "flowed":
        content = unflow(content, part.get_param("delsp", "").lower() == "yes")
    return own_words(content)


def unflow(text: str, delsp: bool = False) -> str:
    """Join the soft-broken lines of `format=flowed` text (RFC 3676 §4): a line that ends in
    a space goes on in the next line of the same quote depth; the signature line stays."""
    lines: list[str] = []
    carry, carry_depth = "", None

    def quote(depth: int) -> str:
        return ">" * depth + (" " if depth else "")

    for raw in text.splitlines():
        depth = len(raw) - len(raw.lstrip(">"))
        line = raw[depth:]
        if line.startswith(" "):
            line = line[1:]  # space-stuffed
        if carry_depth is not None and depth != carry_depth:
            lines.append(quote(carry_depth) + carry)
            carry, carry_depth = "", None
        flowed = line.endswith(" ") and line != "-- "
        if flowed:
            carry += line[:-1] if delsp else line
            carry_depth = depth
            continue
        lines.append(quote(depth) + carry + line)
        carry, carry_depth = "", None
    if carry_depth is not None:
        lines.append(quote(carry_depth) + carry)
    return "\n".join(lines)


class _Text(HTMLParser):
    """HTML's text, a line per block, the lines of a `<blockquote>` marked `>`."""

    BREAKS = frozenset({"br", "p", "div", "tr", "li", "h1", "h2", "h3", "h4", "table",
                        "blockquote", "pre"})  # fmt: skip
    HIDDEN = frozenset({"script", "style", "head", "title"})

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.out: list[str] = []
        self.hidden = self.quoted = 0

    def _tag(self, tag: str, opens: bool) -> None:
        step = 1 if opens else -1
        if tag in self.HIDDEN:
            self.hidden = max(0, self.hidden + step)
        if tag == "blockquote":
            self.quoted = max(0, self.quoted + step)
        if tag in self.BREAKS:
            self.out.append("\n" + "> " * self.quoted)

    def handle_starttag(self, tag, attrs):
        self._tag(tag, True)

    def handle_endtag(self, tag):
        self._tag(tag, False)

    def handle_data(self, data):
        if not self.hidden:
            self.out.append(re.sub(r"\s+", " ", data.replace("\xa0", " ")))


def html_to_text(html: str) -> str:
    """HTML as lines of text."""
    parser = _Text()
    parser.feed(html)
    parser.close()
    return "\n".join(line.strip() for line in "".join(parser.out).splitlines())


# Where a reply's quoted message, a forwarded one's headers or a signature begins.
_QUOTE_STARTS = [
    re.compile(r"^On .{6,200}\bwrote:\s*$"),  # Gmail, Apple Mail, Thunderbird
    re.compile(r"^Am .{6,200}\bschrieb .{0,200}:\s*$"),  # the same, German
    re.compile(r"^Le .{6,200}\ba écrit\s*:\s*$"),  # the same, French
    re.compile(r"^-{2,}\s*Original Message\s*-{2,}\s*$", re.I),  # Outlook, older
    re.compile(r"^_{10,}\s*$"),  # Outlook's rule above the quoted headers
    re.compile(r"^(-- ?|__)$"),  # a signature (RFC 3676 §4.3)
    re.compile(r"^Sent from my \w+", re.I),
    re.compile(r"^Get Outlook for ", re.I),
]
_FORWARDED = re.compile(r"^-{2,}\s*Forwarded message\s*-{2,}\s*$|^Begin forwarded message:\s*$",
                        re.I)  # fmt: skip
_OUTLOOK_HEADER = re.compile(r"^\*?(From|De|Von)\s*:\*?\s", re.I)
_OUTLOOK_SENT = re.compile(r"^\*?(Sent|Date|Envoyé|Gesendet)\s*:\*?\s", re.I)


def own_words(text: str) -> str:
    """`text` without what the sender quoted or signed: a reply's quote (`>` lines and what
    follows "On … wrote:" or Outlook's "From: … Sent: …" block) and the signature. A
    forwarded message's own text is kept (its fields are the request), its headers not."""
    lines = text.splitlines()
    kept: list[str] = []
    for i, line in enumerate(lines):
        stripped = line.strip()
        if _FORWARDED.match(stripped):
            rest = lines[i + 1 :]
            while rest and (not rest[0].strip() or _forward_header(rest[0])):
                rest = rest[1:]
            return "\n".join([*kept, own_words("\n".join(rest))])
        if stripped.startswith(">"):
            continue
        if any(p.match(stripped) for p in _QUOTE_STARTS):
            break
        if (
            stripped.startswith("On ")
            and i + 1 < len(lines)
            and lines[i + 1].rstrip().endswith("wrote:")
        ):
            break  # "On … wrote:" wrapped in two lines
        if _OUTLOOK_HEADER.match(stripped) and any(
            _OUTLOOK_SENT.match(following.strip()) for following in lines[i + 1 : i + 4]
        ):
            break
        kept.append(line)
    return "\n".join(kept)


def _forward_header(line: str) -> bool:
    """Whether a line is one of the headers a forwarded message is quoted with."""
    name, colon, _ = line.strip().partition(":")
    return bool(colon) and name.lower() in {"from", "date", "sent", "subject", "to", "cc"}


def field_name(text: str) -> str | None:
    """A field's name as the sender wrote it (`Type`, `Financials . List value`,
    `scope.Seats`), as the request body names it; None for text that is not a name."""
    name = re.sub(r"\s*\.\s*", ".", text.strip().lower())
    name = re.sub(r"\s+", "_", name)
    return name if FIELD_NAME.fullmatch(name) and name.count("_") < 6 else None


def fields(text: str, locale: str | None = None) -> QueryDict:
    """The `field: value` lines of `text` (other lines are ignored); figures read in the
    sender's locale (12,000 and 12 000 alike in English)."""
    found = QueryDict(mutable=True)
    for line in text.splitlines():
        written, colon, value = line.partition(":")
        name, value = field_name(written), value.strip()
        if not colon or name is None:
            continue
        if name == "products":
            found.setlist(name, [p.strip() for p in re.split(r"[,;]", value) if p.strip()])
        elif name in NUMBERS:
            found[name] = number(value, locale)
        elif name.startswith("evidence."):
            found[f"evidence_text.{name.split('.', 1)[1]}"] = value
        else:
            found[name] = value
    return found


def number(text: str, locale: str | None = None) -> str:
    """A figure in the sender's way of writing it, as plain digits (`12,000` → `12000`,
    `12 000` → `12000`, in German `12.000,5` → `12000.5`); text that is no figure as it is,
    for validation to name."""
    squeezed = re.sub(r"(?<=\d)[\s\u00a0\u202f'](?=\d{3}\b)", "", text.strip())
    try:
        return str(parse_decimal(squeezed, locale=locale or DEFAULT_LOCALE, strict=True))
    except (NumberFormatError, ValueError):
        return text.strip()


@dataclass
class Attached:
    kind: str | None  # the evidence it is, or None when neither a field nor its name says
    filename: str
    content: bytes
    content_type: str


def attachments(message: EmailMessage, named: QueryDict, known_kinds: set[str]) -> list[Attached]:
    """The message's files, each with the evidence kind its file name names
    (`usage_forecast.xlsx`, `Usage forecast Q1.pdf`) or, in order, a field that says it is
    attached (`evidence.usage_forecast: see attached`). A signature's inline image is not
    evidence and is left out."""
    waiting = [name.split(".", 1)[1] for name, value in named.items()
               if name.startswith("evidence_text.") and ATTACHED.search(value)]  # fmt: skip
    files = []
    for part in message.iter_attachments():
        inline = part.get_content_disposition() != "attachment"
        if inline and part.get_content_maintype() == "image":
            continue
        filename = part.get_filename() or "attachment"
        content = part.get_payload(decode=True) or b""
        stem = field_name(re.split(r"[.]", filename, maxsplit=1)[0].replace("-", " ")) or ""
        kind = next((k for k in sorted(known_kinds | set(waiting), key=len, reverse=True)
                     if stem.startswith(k)), None)  # fmt: skip
        files.append(Attached(kind, filename, content, part.get_content_type()))
    for file in files:
        if file.kind is None and waiting:
            file.kind = waiting.pop(0)
        elif file.kind in waiting:
            waiting.remove(file.kind)
    return files
