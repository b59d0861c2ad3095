"""Whether an emailed request may be believed and answered: who really sent it (DKIM, or a
trusted receiving server's Authentication-Results), and whether it is a message that must
never be answered (RFC 3834: automatic, bulk, list, bounce, or our own)."""

from __future__ import annotations

import logging
from email.message import EmailMessage
from email.utils import getaddresses, parseaddr

import authres
import dkim
import dns.exception
import dns.resolver
from django.conf import settings

log = logging.getLogger(__name__)


def sender(message: EmailMessage) -> str:
    """The From address, lower-cased ("" when there is none or several)."""
    found = getaddresses(message.get_all("From", []))
    return found[0][1].lower() if len(found) == 1 and "@" in found[0][1] else ""


def automatic(message: EmailMessage) -> str:
    """Why `message` must not be answered, or "" (RFC 3834 §2 and §5)."""
    auto = str(message.get("Auto-Submitted", "no")).split(";")[0].strip().lower()
    if auto != "no":
        return f"it is an automatic message (Auto-Submitted: {auto})"
    precedence = str(message.get("Precedence", "")).strip().lower()
    if precedence in ("bulk", "junk", "list"):
        return f"it is a {precedence} message (Precedence: {precedence})"
    if any(message.get(h) for h in ("List-Id", "List-Unsubscribe")):
        return "it came through a mailing list"
    if parseaddr(str(message.get("Return-Path", "")))[1] == "" and "Return-Path" in message:
        return "it is a delivery report (empty Return-Path)"
    if sender(message) == parseaddr(settings.DEFAULT_FROM_EMAIL)[1].lower():
        return "it comes from waiverdesk's own address"
    return ""


def verified(message: EmailMessage, raw: bytes) -> str:
    """How the From domain was verified ("dkim=pass header.d=…", or what the trusted server
    said), or "" when it was not: then the message may be forged and is neither believed nor
    answered."""
    address = sender(message)
    if not address:
        return ""
    domain = address.rsplit("@", 1)[1]
    return _trusted_results(message, domain) or _dkim(raw, message, domain)


def _aligned(signer: str, domain: str) -> bool:
    signer = signer.lower().rstrip(".")
    return domain == signer or domain.endswith("." + signer)


def _dkim(raw: bytes, message: EmailMessage, domain: str) -> str:
    """A valid DKIM signature by the From domain (or a parent of it), checked by dkimpy."""
    signatures = len(message.get_all("DKIM-Signature", []))
    checker = dkim.DKIM(raw, minkey=1024)
    for index in range(min(signatures, 5)):
        try:
            if checker.verify(idx=index, dnsfunc=_txt) and _aligned(
                checker.domain.decode(), domain
            ):
                return f"dkim=pass header.d={checker.domain.decode()}"
        except (dkim.DKIMException, UnicodeError, ValueError) as error:
            log.info("a DKIM signature of a message from %s does not verify: %s", domain, error)
    return ""


def _txt(name: bytes, timeout: float = 5) -> bytes | None:
    """A TXT record (a DKIM key) from DNS; from WAIVERDESK_DNS_SERVER when set."""
    resolver = dns.resolver.Resolver(configure=not settings.DNS_SERVER)
    if settings.DNS_SERVER:
        host, _, port = settings.DNS_SERVER.rpartition(":")
        resolver.nameservers, resolver.port = [host or settings.DNS_SERVER], int(port or 53)
    try:
        answer = resolver.resolve(name.decode(), "TXT", lifetime=timeout, raise_on_no_answer=False)
    except (dns.exception.DNSException, UnicodeError):
        return None
    for rrset in answer.response.answer:
        for record in rrset:
            if hasattr(record, "strings"):
                return b"".join(record.strings)
    return None


def _trusted_results(message: EmailMessage, domain: str) -> str:
    """What the topmost Authentication-Results header of a trusted receiving server
    (WAIVERDESK_EMAIL_TRUSTED_AUTHSERV) says: a DMARC pass for the From domain, or a DKIM or
    SPF pass aligned with it. That server must drop such headers arriving from outside with
    its id (RFC 8601 §5), as Postfix with OpenDKIM/OpenDMARC, Exim and Exchange do."""
    trusted = settings.EMAIL_TRUSTED_AUTHSERV
    if not trusted:
        return ""
    for header in message.get_all("Authentication-Results", []):
        try:
            results = authres.AuthenticationResultsHeader.parse_value(str(header))
        except (authres.AuthResError, ValueError, IndexError) as error:
            log.info("an Authentication-Results header does not parse: %s", error)
            continue
        if results.authserv_id.lower() not in trusted:
            continue
        for result in results.results:
            said = {p.type + "." + p.name: (p.value or "").lower() for p in result.properties}
            if result.result != "pass":
                continue
            checked = {"dmarc": "header.from", "dkim": "header.d", "spf": "smtp.mailfrom"}
            where = said.get(checked.get(result.method, ""), "").rsplit("@", 1)[-1]
            if where and _aligned(where, domain):
                return f"{results.authserv_id}: {result.method}=pass {where}"
        return ""  # only the topmost header of a trusted server counts
    return ""
