"""Evidence files on disk: size-limited, type-checked, stored once by SHA-256.

A file is read in chunks (never whole into memory), checked and staged beside the store;
the transaction that records its row puts it in place, holding a lock on its hash until
commit; and a file whose row was not stored is removed under the same lock, only if no
row uses it. So of two requests uploading the same file at once, one failing never takes
the file from under the other: every stored row has its file.
"""

from __future__ import annotations

import codecs
import hashlib
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from django.conf import settings
from django.core.files.uploadhandler import TemporaryFileUploadHandler
from django.db import connection, transaction

from waiverdesk.core.errors import Invalid, Problem

# Declared type -> how its first bytes must look (None: must be UTF-8 text).
ALLOWED: dict[str, tuple[bytes, ...] | None] = {
    "application/pdf": (b"%PDF-",),
    "image/png": (b"\x89PNG\r\n\x1a\n",),
    "image/jpeg": (b"\xff\xd8\xff",),
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": (b"PK\x03\x04",),
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document": (b"PK\x03\x04",),
    "text/csv": None,
    "text/plain": None,
}
# What a browser may show in place (its own image decoder or PDF viewer, never HTML or SVG).
PREVIEWABLE = frozenset({"application/pdf", "image/png", "image/jpeg"})
CHUNK = 1 << 20


@dataclass(frozen=True)
class Stored:
    filename: str
    content_type: str
    size: int
    sha256: str
    staged: str  # the checked file, until `keep` puts it in place


def path_for(sha256: str) -> Path:
    return Path(settings.ATTACHMENT_DIR) / sha256[:2] / sha256


def store(filename: str, content: bytes | BinaryIO, content_type: str) -> Stored:
    """Check a file (bytes, or a binary file read in chunks) and stage it; Invalid with every
    problem. Stop reading at the size limit."""
    problems = []
    name = os.path.basename(filename or "").strip()
    if not name:
        problems.append(Problem("filename", "required", "the file needs a name"))
    if content_type not in ALLOWED:
        problems.append(
            Problem("content_type", "not_allowed", f"allowed types: {', '.join(sorted(ALLOWED))}")
        )
    staging = Path(settings.ATTACHMENT_DIR) / "staging"
    staging.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=staging, delete=False) as staged:
        size, digest, head, text = _copy(content, staged)
    signatures = ALLOWED.get(content_type, ())
    if size == 0:
        problems.append(Problem("file", "empty", "the file is empty"))
    elif size > settings.ATTACHMENT_MAX_BYTES:
        limit = settings.ATTACHMENT_MAX_BYTES
        problems.append(Problem("file", "too_large", f"files may be at most {limit} bytes"))
    elif content_type in ALLOWED and not (
        text if signatures is None else head.startswith(signatures)
    ):
        problems.append(Problem("file", "type_mismatch", f"the file is not {content_type}"))
    if problems:
        Path(staged.name).unlink(missing_ok=True)
        raise Invalid(problems)
    return Stored(name[:255], content_type, size, digest, staged.name)


def _copy(content: bytes | BinaryIO, out) -> tuple[int, str, bytes, bool]:
    """Copy up to the size limit (and one byte more, to tell); return the size, SHA-256, the
    first bytes and whether it is text (UTF-8 without NUL)."""
    if isinstance(content, bytes):
        chunks = (content[i : i + CHUNK] for i in range(0, len(content), CHUNK))
    else:
        content.seek(0)
        chunks = iter(lambda: content.read(CHUNK), b"")
    hasher, size, head = hashlib.sha256(), 0, b""
    decoder, text = codecs.getincrementaldecoder("utf-8")(), True
    for chunk in chunks:
        chunk = chunk[: settings.ATTACHMENT_MAX_BYTES + 1 - size]
        if not chunk:
            break
        size += len(chunk)
        head = head or chunk[:16]
        hasher.update(chunk)
        out.write(chunk)
        if text:
            try:
                decoder.decode(chunk)
                text = b"\x00" not in chunk
            except UnicodeDecodeError:
                text = False
    if text:
        try:
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            text = False
    return size, hasher.hexdigest(), head, text


def keep(stored: Stored) -> None:
    """Put a staged file in place, in the transaction that records its row (and holding the
    file's lock until that transaction ends)."""
    _lock(stored.sha256)
    target = path_for(stored.sha256)
    staged = Path(stored.staged)
    if target.exists():
        staged.unlink(missing_ok=True)
    elif staged.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(staged, target)  # atomic: a reader never sees half a file
    else:
        raise FileNotFoundError(f"the file {stored.filename} is no longer staged")


def discard(stored: Stored) -> None:
    """Forget a file whose row was not stored: unstage it, and remove it from the store unless
    an attachment uses it."""
    Path(stored.staged).unlink(missing_ok=True)
    forget(stored.sha256)


def forget(sha256: str) -> None:
    """Remove a stored file unless an attachment or a pending upload still uses it."""
    from .models import Attachment, PendingUpload

    with transaction.atomic():
        _lock(sha256)
        in_use = Attachment.objects.filter(sha256=sha256).exists() or (
            PendingUpload.objects.filter(sha256=sha256).exists())  # fmt: skip
        if not in_use:
            path_for(sha256).unlink(missing_ok=True)


def _lock(sha256: str) -> None:
    """Hold the file's lock until the transaction ends: on PostgreSQL an advisory lock on its
    hash; SQLite's transactions hold the one write lock already."""
    if connection.vendor == "postgresql":
        key = int.from_bytes(bytes.fromhex(sha256[:16]), "big", signed=True)
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [key])


class UploadHandler(TemporaryFileUploadHandler):
    """Every uploaded file goes to a temporary file as it arrives (never whole into memory),
    and past the size limit its bytes are no longer kept: `store` then says it is too large."""

    def receive_data_chunk(self, raw_data: bytes, start: int):
        self.file.write(raw_data[: max(0, settings.ATTACHMENT_MAX_BYTES + 1 - start)])
        return None


def limit_uploads(get_response):
    """Middleware: a form carrying more than UPLOAD_MAX_BYTES in all is refused (413) before
    any of it is read."""
    from django.http import HttpResponse

    def middleware(request):
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        if length > settings.UPLOAD_MAX_BYTES:
            limit = settings.UPLOAD_MAX_BYTES / 2**20
            return HttpResponse(
                f"This request carries {length / 2**20:.0f} MB; at most {limit:.0f} MB of files "
                "may be sent at once.", status=413, content_type="text/plain; charset=utf-8",
            )  # fmt: skip
        return get_response(request)

    return middleware
