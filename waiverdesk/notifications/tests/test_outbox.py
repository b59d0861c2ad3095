"""The outbox: what it sends is well formed, whatever text it is made of."""

from django.db import transaction

from waiverdesk.notifications import services as notify
from waiverdesk.testing import NOW


def test_a_subject_made_of_someones_text_never_fails_a_send(world, smtp_server):
    """An emailed request's subject, with a line break in it, is answered on one line, and
    the break cannot add a header."""
    with transaction.atomic():
        notify.queue_email("rita@example.com", "Re: Acme\r\nBcc: someone@elsewhere.example",
                           "Your request is saved.", "intake.answer", NOW)  # fmt: skip
    assert notify.deliver(NOW)["sent"] == 1
    (mail,) = smtp_server
    assert mail["Subject"] == "Re: Acme Bcc: someone@elsewhere.example"
    assert mail["Bcc"] is None
