"""Evidence files on disk: size-limited, type-checked, stored by SHA-256."""

from __future__ import annotations

import hashlib
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings

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


@dataclass(frozen=True)
class Stored:
    filename: str
    content_type: str
    size: int
    sha256: str


def path_for(sha256: str) -> Path:
    return Path(settings.ATTACHMENT_DIR) / sha256[:2] / sha256


def store(filename: str, content: bytes, content_type: str) -> Stored:
    """Check and write a file; the same content is stored once."""
    problems = []
    name = os.path.basename(filename or "").strip()
    if not name:
        problems.append(Problem("filename", "required", "the file needs a name"))
    if not content:
        problems.append(Problem("file", "empty", "the file is empty"))
    elif len(content) > settings.ATTACHMENT_MAX_BYTES:
        problems.append(
            Problem(
                "file", "too_large", f"files may be at most {settings.ATTACHMENT_MAX_BYTES} bytes"
            )
        )
    if content_type not in ALLOWED:
        problems.append(
            Problem("content_type", "not_allowed", f"allowed types: {', '.join(sorted(ALLOWED))}")
        )
    elif content and not _looks_like(content, ALLOWED[content_type]):
        problems.append(Problem("file", "type_mismatch", f"the file is not {content_type}"))
    if problems:
        raise Invalid(problems)
    digest = hashlib.sha256(content).hexdigest()
    target = path_for(digest)
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=target.parent, delete=False) as tmp:
            tmp.write(content)
        os.replace(tmp.name, target)  # atomic: a reader never sees half a file
    return Stored(name[:255], content_type, len(content), digest)


def discard_unless_used(sha256: str) -> None:
    """Remove a file whose row was not stored, unless another attachment has the same content."""
    from .models import Attachment

    if not Attachment.objects.filter(sha256=sha256).exists():
        path_for(sha256).unlink(missing_ok=True)


def _looks_like(content: bytes, signatures: tuple[bytes, ...] | None) -> bool:
    if signatures is None:
        try:
            content.decode("utf-8")
        except UnicodeDecodeError:
            return False
        return b"\x00" not in content
    return content.startswith(signatures)
