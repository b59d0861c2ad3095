"""Webhooks never reach inside (issue 15, part 1): the address the connection will use is
judged, in every form a URL can give it, at registration and at every delivery; the
connection goes to the address judged; redirects are not followed; no proxy is used."""

import socket

import pytest
from django.contrib.auth.models import User

from waiverdesk.core.errors import Invalid
from waiverdesk.notifications import services as notify
from waiverdesk.notifications.models import Message
from waiverdesk.testing import NOW, request_body
from waiverdesk.waivers import services
from waiverdesk.webhooks import services as webhooks
from waiverdesk.webhooks.models import Webhook

PUBLIC = "https://93.184.215.14/hooks"  # a public address, written as one: no DNS needed


INTO_THE_NETWORK = [
    "http://127.0.0.1/hooks",
    "http://localhost:8000/hooks",
    "http://2130706433/hooks",  # 127.0.0.1 as a decimal number
    "http://0x7f000001/hooks",  # as hex
    "http://0177.0.0.1/hooks",  # as octal
    "http://%31%32%37.0.0.1/hooks",  # percent-encoded
    "http://[::1]/hooks",
    "http://[::ffff:127.0.0.1]/hooks",  # IPv4-mapped IPv6
    "http://[::ffff:a9fe:a9fe]/latest/meta-data",  # 169.254.169.254, mapped
    "http://169.254.169.254/latest/meta-data",  # a cloud's metadata service
    "http://10.0.0.7/hooks",
    "http://192.168.1.1/hooks",
    "http://[fd00::1]/hooks",
    "http://0.0.0.0/hooks",
    "http://name-that-does-not-resolve.invalid/hooks",  # fails closed
    "http://user:secret@93.184.215.14/hooks",
    "ftp://93.184.215.14/hooks",
    "http://93.184.215.14:99999/hooks",
    "http://127.1/hooks",  # short forms
    "http://0/hooks",
    "http://017700000001/hooks",
    "http://0x7f.0x0.0x0.0x1/hooks",
    "http://127.0.0.1./hooks",  # trailing dots
    "http://localhost./hooks",
    "http://LOCALHOST/hooks",
    "http://[0:0:0:0:0:0:0:1]/hooks",
    "http://[::]/hooks",
    "http://[::ffff:7f00:1]/hooks",
    "http://[::127.0.0.1]/hooks",  # IPv4-compatible
    "http://[fe80::1%25eth0]/hooks",
    "http://[fe80::1]/hooks",
    "http://[2002:7f00:1::]/hooks",  # 6to4 of 127.0.0.1
    "http://[64:ff9b::7f00:1]/hooks",  # NAT64 of 127.0.0.1
    "http://100.100.100.200/latest/meta-data",  # Alibaba's metadata (shared address space)
    "http://[fd00:ec2::254]/latest/meta-data",  # AWS's, over IPv6
    "http://192.0.0.192/opc/v2",  # Oracle's
    "http://172.16.0.1/hooks",
    "http://172.31.255.255/hooks",
    "http://198.18.0.1/hooks",
    "http://224.0.0.1/hooks",  # multicast
    "http://255.255.255.255/hooks",
    "http://%6c%6f%63%61%6c%68%6f%73%74/hooks",
    "https://127.0.0.1/hooks",
    "http://\uff4c\uff4f\uff43\uff41\uff4c\uff48\uff4f\uff53\uff54/hooks",  # full-width letters
    "http://2852039166/latest/meta-data",
    "http://0xa9fea9fe/latest/meta-data",
    "http://[::ffff:169.254.169.254]/latest/meta-data",
    "http://10.1/hooks",
    "http://metadata.google.internal/computeMetadata/v1/",  # Google's (resolves only inside)
    "http://0x7f.1/hooks",
    "http://[::ffff:0:7f00:1]/hooks",  # IPv4-translated
]  # fmt: skip


@pytest.mark.parametrize("url", INTO_THE_NETWORK)
def test_registration_refuses_every_way_into_the_private_network(db, settings, url):
    settings.ALLOW_PRIVATE_WEBHOOKS = False
    adam = User.objects.create(username="adam")
    with pytest.raises(Invalid) as caught:
        webhooks.register(url, ["waiver.submitted"], adam)
    assert caught.value.problems[0].field == "url"
    assert not Webhook.objects.exists()


@pytest.mark.parametrize("url", INTO_THE_NETWORK)
def test_delivery_refuses_every_way_into_the_private_network(db, settings, url, monkeypatch):
    """An endpoint stored before (or whose name has since come to lead inside) is judged
    again at delivery, and no connection is made."""
    settings.ALLOW_PRIVATE_WEBHOOKS = False
    connected = []
    monkeypatch.setattr(socket, "create_connection", lambda *a, **k: connected.append(a))
    hook = Webhook.objects.create(url=url, secret="whsec_" + "A" * 32, created_at=NOW,
                                  created_by=User.objects.create(username="adam"))  # fmt: skip
    Message.objects.create(channel="webhook", event="waiver.submitted", webhook=hook, body="{}",
                           message_id="msg_1", next_attempt_at=NOW, created_at=NOW)  # fmt: skip
    assert notify.deliver(NOW) == {"retry": 1}
    assert Message.objects.get().last_error.startswith("PrivateAddress(")
    assert connected == []


def test_a_public_address_is_registered(world, settings):
    settings.ALLOW_PRIVATE_WEBHOOKS = False
    hook = webhooks.register(PUBLIC, ["waiver.submitted"], world["adam"])
    assert hook.url == PUBLIC
    assert webhooks.target(PUBLIC).addresses == ("93.184.215.14",)


def deliver_one(world, receiver, url):
    hook = webhooks.register(url, ["waiver.submitted"], world["adam"])
    receiver.secret = hook.secret
    services.create(request_body(submit=True), world["rita"], now=NOW)
    outcome = notify.deliver(NOW)
    return outcome, Message.objects.get(webhook=hook)


def test_each_delivery_is_judged_again(world, webhook_receiver, settings):
    hook = webhooks.register(webhook_receiver.url, ["waiver.submitted"], world["adam"])
    webhook_receiver.secret = hook.secret
    services.create(request_body(submit=True), world["rita"], now=NOW)
    settings.ALLOW_PRIVATE_WEBHOOKS = False  # the address is private now, as it always was
    assert notify.deliver(NOW)["retry"] >= 1
    message = Message.objects.get(webhook=hook)
    assert "a private address" in message.last_error and message.state == "pending"
    assert webhook_receiver.attempts == []


def test_a_redirect_is_a_failed_delivery_with_its_location(world, webhook_receiver):
    webhook_receiver.answer, webhook_receiver.location = 302, "http://10.0.0.7/inside"
    outcome, message = deliver_one(world, webhook_receiver, webhook_receiver.url)
    assert outcome["retry"] == 1 and len(webhook_receiver.attempts) == 1
    assert "redirected (302) to 'http://10.0.0.7/inside'" in message.last_error


def test_no_proxy_from_the_environment_is_used(world, webhook_receiver, monkeypatch):
    for name in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy"):
        monkeypatch.setenv(name, "http://127.0.0.1:9")  # nothing listens there
    monkeypatch.delenv("no_proxy", raising=False)
    monkeypatch.delenv("NO_PROXY", raising=False)
    outcome, message = deliver_one(world, webhook_receiver, webhook_receiver.url)
    assert outcome["sent"] == 1 and webhook_receiver.attempts[0]["verified"]


def test_the_connection_goes_to_the_address_that_was_judged(world, webhook_receiver, monkeypatch):
    """The name is resolved once, for the judgement, and the connection is made to that
    address: an answer that changes between the check and the connection cannot redirect it.
    Here the name exists only in the resolver the check uses."""
    real = socket.getaddrinfo
    asked = []

    def resolver(host, *args, **kwargs):
        asked.append(host)
        return real("127.0.0.1" if host == "hooks.partner.test" else host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", resolver)
    port = webhook_receiver.url.split(":")[2].split("/")[0]
    outcome, _message = deliver_one(world, webhook_receiver, f"http://hooks.partner.test:{port}/h")
    assert outcome["sent"] == 1
    assert asked.count("hooks.partner.test") == 1  # judged once; connected to what was judged
    assert webhook_receiver.attempts[0]["host"] == f"hooks.partner.test:{port}"
