"""Files chosen on a form that was refused, kept for the person who chose them: the
corrected form sends them again, so that a mistake never costs the files already chosen."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.contrib.auth.models import User
from django.db import transaction

from waiverdesk import clock
from waiverdesk.core.errors import Invalid

from . import attachments
from .models import PendingUpload
from .services import Upload


def hold(user: User, uploads: list[Upload], now: datetime | None = None) -> list[PendingUpload]:
    """Keep each of `uploads` that passes the checks of a file (the others have their own
    problems to show) as a pending upload of `user`."""
    now = now or clock.now()
    kept = []
    for upload in uploads:
        try:
            stored = attachments.store(upload.filename, upload.content, upload.content_type)
        except Invalid:
            continue
        with transaction.atomic():
            attachments.keep(stored)
            kept.append(PendingUpload.objects.create(
                user=user, kind=upload.kind, filename=stored.filename,
                content_type=stored.content_type, size=stored.size, sha256=stored.sha256,
                created_at=now,
            ))  # fmt: skip
    return kept


def chosen(user: User, ids: list[str]) -> list[PendingUpload]:
    """The pending uploads of `user` among `ids` (anyone else's are not theirs to send)."""
    wanted = [int(i) for i in ids if str(i).isdigit() and len(str(i)) < 19]
    return list(PendingUpload.objects.filter(user=user, pk__in=wanted))


def as_uploads(pending: list[PendingUpload]) -> list[Upload]:
    """The files of `pending`, to send with a form (read from the store, checked again)."""
    found = []
    for p in pending:
        path = attachments.path_for(p.sha256)
        if path.is_file():
            found.append(Upload(p.kind, p.filename, path.open("rb"), p.content_type))
    return found


def release(pending: list[PendingUpload]) -> None:
    """Forget `pending` (sent, or no longer wanted): each file stays only while in use."""
    for p in pending:
        p.delete()
        attachments.forget(p.sha256)


def close(uploads: list[Upload]) -> None:
    for upload in uploads:
        if hasattr(upload.content, "close"):
            upload.content.close()


KEPT_FOR = timedelta(days=1)


def forget_stale(now: datetime, dry_run: bool = False) -> list[tuple[str, str]]:
    """The worker's job: files kept from a refused form for a day and not sent again are
    forgotten (each file stays while an attachment uses it)."""
    stale = list(PendingUpload.objects.filter(created_at__lt=now - KEPT_FOR))
    if stale and not dry_run:
        release(stale)
    said = "would forget" if dry_run else "forgot"
    return [("pending uploads", f"{said} {len(stale)}")] if stale else []
