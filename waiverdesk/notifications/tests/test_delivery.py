"""Delivery by a pool of workers: each message once, endpoints that cannot hold up one
another, and endpoints that have failed for days switched off with their owner told."""

import json
import os
import signal
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest
from django.conf import settings
from django.contrib.auth.models import User
from django.db import connection
from django.utils import timezone

from waiverdesk.audit.models import AuditEntry
from waiverdesk.notifications import services as notify
from waiverdesk.notifications.models import Message
from waiverdesk.testing import NOW, WebhookReceiver, at_once, postgres_only
from waiverdesk.webhooks import services as webhooks


def queue(hook, count: int, at) -> list[str]:
    """`count` events for `hook` in the outbox, due at `at`; their webhook-ids."""
    ids = [f"msg_{hook.pk}_{at:%j%H%M}_{i}" for i in range(count)]
    Message.objects.bulk_create(
        Message(channel="webhook", event="waiver.submitted", webhook=hook, message_id=i,
                body=json.dumps({"type": "waiver.submitted", "n": n}), next_attempt_at=at,
                created_at=at)
        for n, i in enumerate(ids)
    )  # fmt: skip
    return ids


@pytest.fixture
def receivers(settings):
    settings.ALLOW_PRIVATE_WEBHOOKS = True
    made = []

    def make():
        made.append(WebhookReceiver())
        return made[-1]

    yield make
    for receiver in made:
        receiver.stop()


def endpoint(receiver, owner="adam"):
    hook = webhooks.register(receiver.url, [], User.objects.get(username=owner))
    receiver.secret = hook.secret
    return hook


@postgres_only
def test_two_workers_send_each_of_200_messages_exactly_once(
    committed_world, receivers, monkeypatch
):
    # A lease far shorter than the whole batch takes: a worker holding its messages for
    # the batch would lose them to the other worker, and both would send them.
    monkeypatch.setattr(notify, "LEASE", timedelta(seconds=1))
    receiver = receivers()
    receiver.delay = 0.02
    ids = queue(endpoint(receiver), 200, timezone.now())

    def work(_):
        while notify.deliver(timezone.now()):
            pass

    assert at_once(2, work) == [None, None]
    received = [a["id"] for a in receiver.attempts]
    assert sorted(received) == sorted(ids)  # every one, none twice
    assert all(a["verified"] for a in receiver.attempts)
    assert set(Message.objects.values_list("state", flat=True)) == {"sent"}


def test_a_worker_that_lost_its_claim_does_not_mark_the_message(world, receivers, monkeypatch):
    receiver = receivers()
    hook = endpoint(receiver)
    [message_id] = queue(hook, 1, NOW)
    first_worker = notify._Lane("first")
    first_worker.due.append(Message.objects.get(message_id=message_id).pk)
    (message,) = first_worker.claim(NOW)
    # The first worker stalls past its lease; a second takes the message and sends it.
    later = NOW + notify.LEASE + timedelta(seconds=1)
    assert notify.deliver(later)["sent"] == 1
    assert notify._record(message, RuntimeError("late failure"), "first", later) == "lost"
    assert Message.objects.get(message_id=message_id).state == "sent"
    assert [a["id"] for a in receiver.attempts] == [message_id]


@postgres_only
def test_a_worker_killed_mid_delivery_leaves_the_message_to_be_sent_again_with_its_id(
    committed_world, receivers, tmp_path
):
    receiver = receivers()
    receiver.delay = 30  # the first delivery is under way when the worker is killed
    [message_id] = queue(endpoint(receiver), 1, timezone.now())
    database = settings.DATABASES["default"]
    url = f"postgres://{database['USER']}@{database['HOST']}:{database['PORT']}/{connection.settings_dict['NAME']}"
    env = {**os.environ, "DATABASE_URL": url, "WAIVERDESK_ALLOW_PRIVATE_WEBHOOKS": "1",
           "WAIVERDESK_DATA_DIR": str(tmp_path)}  # fmt: skip
    worker = subprocess.Popen(
        [Path(sys.executable).parent / "waiverdesk", "worker", "--once"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    for _ in range(600):
        if receiver.attempts:
            break
        time.sleep(0.05)
    worker.send_signal(signal.SIGKILL)
    worker.wait()
    assert Message.objects.get(message_id=message_id).state == "sending"

    receiver.delay = 0
    assert notify.deliver(timezone.now()) == {}  # still leased to the dead worker
    assert notify.deliver(timezone.now() + notify.LEASE + timedelta(seconds=1)) == {"sent": 1}
    assert [a["id"] for a in receiver.attempts] == [message_id, message_id]
    assert all(a["verified"] for a in receiver.attempts)


def test_a_slow_endpoint_does_not_hold_up_another(world, receivers, settings):
    settings.WEBHOOK_TIMEOUT = 1
    slow, fast = receivers(), receivers()
    slow.delay = 5
    slow_ids, fast_ids = queue(endpoint(slow), 5, NOW), queue(endpoint(fast), 5, NOW)

    assert notify.deliver(NOW) == {"sent": 5, "retry": 1}
    assert [a["id"] for a in fast.attempts] == fast_ids  # all, in the order they were queued
    # ...while the slow endpoint's first delivery was still waiting for its answer.
    assert fast.attempts[-1]["at"] < slow.attempts[0]["at"] + settings.WEBHOOK_TIMEOUT
    assert [a["id"] for a in slow.attempts] == slow_ids[:1]  # its lane waits for the next round
    failed = Message.objects.get(message_id=slow_ids[0])
    assert failed.state == "pending" and "no answer within 1 s" in failed.last_error
    assert Message.objects.filter(message_id__in=slow_ids[1:], attempts=0).count() == 4


def test_an_endpoint_failing_for_five_days_is_disabled_and_its_owner_told(world, receivers):
    User.objects.filter(username="adam").update(email="adam@vendor.example")
    receiver = receivers()
    receiver.answer = 500
    hook = endpoint(receiver)
    day = timedelta(days=1)

    queue(hook, 1, NOW)
    notify.deliver(NOW)
    hook.refresh_from_db()
    assert hook.active and hook.failing_since == NOW

    late = NOW + 5 * day + timedelta(minutes=1)
    Message.objects.filter(webhook=hook).update(next_attempt_at=late)
    queue(hook, 3, late)
    notify.deliver(late)
    hook.refresh_from_db()
    assert not hook.active and "every delivery failed since" in hook.disabled_reason
    assert not Message.objects.filter(webhook=hook, state="pending").exists()  # none left to try
    entry = AuditEntry.objects.get(action="webhook.disabled")
    assert json.loads(entry.payload)["url"] == receiver.url and entry.actor == "system"
    told = Message.objects.get(channel="email", event="webhook.disabled")
    assert told.recipient == "adam@vendor.example"
    assert receiver.url in told.body and "500" in told.body


def test_a_success_ends_the_failing_streak(world, receivers):
    receiver = receivers()
    hook = endpoint(receiver)
    day = timedelta(days=1)
    for at, answer in (
        (NOW, 500),
        (NOW + 3 * day, 200),
        (NOW + 4 * day, 500),
        (NOW + 7 * day, 500),
    ):
        receiver.answer = answer
        queue(hook, 1, at)
        notify.deliver(at)
        Message.objects.filter(webhook=hook).update(state="sent")  # each day's message, done
    hook.refresh_from_db()
    assert hook.active and hook.failing_since == NOW + 4 * day


def test_a_receiver_that_never_finishes_its_answer_is_cut_off(world, receivers, settings):
    import socket
    import threading

    settings.WEBHOOK_TIMEOUT = 1
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()

    def drip():  # answers one byte of its status line every half second, for ever
        conn, _ = listener.accept()
        conn.recv(65536)
        for byte in b"HTTP/1.1 200 OK\r\n" * 100:
            try:
                conn.send(bytes([byte]))
            except OSError:
                return
            time.sleep(0.5)

    threading.Thread(target=drip, daemon=True).start()
    url = f"http://127.0.0.1:{listener.getsockname()[1]}/hooks"
    with pytest.raises(TimeoutError, match="no answer within 1 s"):
        webhooks.post(url, b"{}", {"Content-Type": "application/json"})
    listener.close()
