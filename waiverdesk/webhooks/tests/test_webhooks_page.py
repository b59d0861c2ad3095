"""The webhooks page: admins see every endpoint, its state and its latest deliveries, and
disable one (audited; what was queued for it is not sent)."""

import json

from waiverdesk.audit.models import AuditEntry
from waiverdesk.notifications import services as notify
from waiverdesk.notifications.models import Message
from waiverdesk.testing import NOW, as_read, client_for, request_body
from waiverdesk.waivers import services
from waiverdesk.webhooks import services as webhooks
from waiverdesk.webhooks.models import Webhook


def test_an_admin_sees_the_deliveries_and_disables_an_endpoint(world, webhook_receiver):
    hook = webhooks.register(webhook_receiver.url, [], world["adam"])
    webhook_receiver.secret = hook.secret
    waiver = services.create(request_body(submit=True), world["rita"], now=NOW)
    notify.deliver(now=NOW)
    services.decide(waiver.reference, world["mona"], "approve", now=NOW)  # queued, not sent
    adam = client_for("adam")
    page = adam.get("/manage/webhooks/").content.decode()
    assert webhook_receiver.url in page and "Receiving" in page
    assert "waiver.submitted" in page and "sent" in page and waiver.reference in page

    answer = adam.post(f"/manage/webhooks/{hook.pk}/disable", {"reason": "vendor retired"},
                       follow=True).content.decode()  # fmt: skip
    assert "is disabled; nothing more is sent" in answer and "Disabled: vendor retired" in answer
    assert not Webhook.objects.get(pk=hook.pk).active
    entry = AuditEntry.objects.get(action="webhook.disabled")
    assert as_read(entry)[0] == "adam" and json.loads(entry.payload)["not_sent"] >= 1
    received = len(webhook_receiver.attempts)
    notify.deliver(now=NOW)
    assert len(webhook_receiver.attempts) == received  # nothing more went out
    assert not Message.objects.filter(webhook=hook, state=Message.State.PENDING).exists()
    assert client_for("rita").post(f"/manage/webhooks/{hook.pk}/disable").status_code == 403
