"""Request bodies, people and helpers for tests and benchmarks."""

import contextlib
import os
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

import pytest
from django.db import connection

NOW = datetime(2027, 1, 4, 9, 0, tzinfo=UTC)
PEOPLE = {
    "rita": ["requester"],
    "sam": ["requester"],
    "mona": ["sales_manager"],
    "mark": ["sales_manager", "requester"],
    "dana": ["deal_desk"],
    "dirk": ["deal_desk"],
    "fiona": ["finance"],
    "felix": ["finance"],
    "leo": ["legal"],
    "lara": ["legal"],
    "eva": ["executive"],
    "edgar": ["executive"],
    "erin": ["executive"],
    "olga": ["control_owner"],
    "adam": ["admin"],
    "ivan": ["implementer"],
    "audrey": ["auditor"],
    "paula": ["policy_admin"],
    "charlie": [],
}


def request_body(**changes):
    """A short, low-risk temporary access request: one sales manager approves it."""
    body = {
        "type": "temporary_access",
        "customer": "GLOBEX-002",
        "products": ["AN-EDGE"],
        "license_type": "subscription",
        "region": "AMER",
        "start": "2027-02-01",
        "end": "2027-03-15",
        "scope": {"seats": 50},
        "financials": {"currency": "EUR", "list_value": 12000, "concession": 3000},
        "justification": {
            "benefit": "Keeps 50 analysts working",
            "alternatives": "none",
            "customer_impact": "no outage",
            "why_not_standard": "renewal late",
        },
        "outcomes": [{"metric": "analysts working through the renewal", "target": 50}],
        "control_owner": "olga",
    }
    for key, value in changes.items():
        body[key] = value
    return body


def request_form(**changes) -> dict:
    """The web form of a short temporary access request (request_body()), as posted."""
    form = {
        "customer": "GLOBEX-002", "products": "AN-EDGE", "license_type": "subscription",
        "region": "AMER", "start": "2027-02-01", "end": "2027-03-15", "scope.seats": "50",
        "justification.benefit": "Keeps 50 analysts working", "justification.customer_impact":
        "no outage", "justification.why_not_standard": "renewal late",
        "outcomes.metric": "analysts working", "outcomes.target": "50", "control_owner": "olga",
    }  # fmt: skip
    return {**form, **changes}


def big_discount_body(**changes):
    """A large, long volume discount on a high-risk product: every tier up to executive."""
    return request_body(
        **{
            "type": "volume_discount",
            "customer": "ACME-001",
            "products": ["DB-ENT"],
            "region": "EMEA",
            "start": "2027-02-01",
            "end": "2028-06-30",
            "scope": {"seats": 1500, "quantity": 1500, "discount_pct": 35},
            "financials": {"currency": "EUR", "list_value": 900000, "concession": 315000},
            "evidence": {"business_impact_analysis": "Adds 4.1M over three years"},
            "outcomes": [{"metric": "seats deployed by month 6", "target": 1200}],
            **changes,
        }
    )


postgres_only = pytest.mark.skipif(
    not os.environ.get("DATABASE_URL", "").startswith("postgres"),
    reason="needs PostgreSQL (set DATABASE_URL)",
)
# A slow test of what does not depend on the engine (the OpenAPI document, the server's
# processes, Django's serializers): run once, in the SQLite suite, which has time to spare.
once_on_sqlite = pytest.mark.skipif(
    os.environ.get("DATABASE_URL", "").startswith("postgres"),
    reason="engine-independent: run in the SQLite suite",
)


def at_once(count: int, work) -> list:
    """Run `work(i)` in `count` threads released together; return what each returned or raised."""
    barrier, results = threading.Barrier(count), [None] * count

    def run(i):
        try:
            barrier.wait()
            results[i] = work(i)
        except Exception as exc:  # collected and asserted on by the test
            results[i] = exc
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


@contextlib.contextmanager
def serving(env: dict[str, str], port: int, workers: int = 2):
    """`waiverdesk serve` in a subprocess, answering on `port` until the block ends."""
    env = {"WAIVERDESK_SECRET_KEY": "a-test-key-" + "x" * 50, **env}
    server = subprocess.Popen(
        [Path(sys.executable).parent / "waiverdesk", "serve", "--bind", f"127.0.0.1:{port}",
         "--workers", str(workers)],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        for _ in range(200):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1)
                break
            except urllib.error.HTTPError:
                break  # it answers, if only to say it is unhealthy
            except OSError:
                time.sleep(0.1)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.terminate()
        server.wait(timeout=30)


class WebhookReceiver:
    """An HTTP server on a free port that records every webhook delivery: its id, event and
    whether its signature verifies (by the `standardwebhooks` package, not our code)."""

    def __init__(self):
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        self.secret = ""
        self.attempts: list[dict] = []  # every request, verified or not
        self.fail_first = 0  # answer 500 to this many requests first
        self.answer = 200
        self.location = ""  # sent as Location, with a 3xx answer
        self.delay = 0.0  # seconds to wait before answering each request
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                from standardwebhooks.webhooks import Webhook, WebhookVerificationError

                body = self.rfile.read(int(self.headers["Content-Length"])).decode()
                headers = {k.lower(): v for k, v in self.headers.items()}
                try:
                    Webhook(receiver.secret).verify(body, headers)
                    verified = True
                except WebhookVerificationError:
                    verified = False
                receiver.attempts.append({"id": headers["webhook-id"], "verified": verified,
                                          "body": body, "host": headers.get("host"),
                                          "at": time.monotonic()})  # fmt: skip
                time.sleep(receiver.delay)
                failing = len(receiver.attempts) <= receiver.fail_first
                self.send_response(500 if failing else receiver.answer)
                if receiver.location:
                    self.send_header("Location", receiver.location)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def delivered(self) -> list[dict]:
        """The deliveries answered with success."""
        return self.attempts[self.fail_first :] if self.answer < 300 else []

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def finish_required_tasks(reference: str, implementer, now=NOW) -> None:
    """Do an approved waiver's required implementation tasks, each by the person it is for
    (or by `implementer` for the implementer role), so that it can take effect."""
    from waiverdesk.waivers import services

    for task in services.get(reference).tasks.filter(required=True):
        services.complete_task(task.pk, task.owner or implementer, now=now)


def publish_policy(text: str, note: str = ""):
    """Publish a policy version and have a second policy owner (adam, an admin) approve it."""
    from django.contrib.auth.models import Group, User

    from waiverdesk.policies import services as policies

    version = policies.publish(text, note=note)
    if not version.is_active:
        adam, _ = User.objects.get_or_create(username="adam")
        adam.groups.add(Group.objects.get_or_create(name="admin")[0])
        version = policies.approve(version.number, adam)
    return version


class DnsServer:
    """A DNS server on a free UDP port of 127.0.0.1 that answers TXT queries from `records`
    (name → text), for DKIM keys; point WAIVERDESK_DNS_SERVER (settings.DNS_SERVER) at
    `address`."""

    def __init__(self):
        import socket

        self.records: dict[str, str] = {}
        self.socket = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.socket.bind(("127.0.0.1", 0))
        self.address = f"127.0.0.1:{self.socket.getsockname()[1]}"
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        import dns.message
        import dns.rcode
        import dns.rrset

        while True:
            try:
                data, peer = self.socket.recvfrom(4096)
            except OSError:
                return  # closed
            query = dns.message.from_wire(data)
            answer = dns.message.make_response(query)
            name = str(query.question[0].name).rstrip(".").lower()
            if name in self.records:
                text = self.records[name]
                chunks = " ".join(f'"{text[i : i + 250]}"' for i in range(0, len(text), 250))
                answer.answer.append(
                    dns.rrset.from_text(query.question[0].name, 60, "IN", "TXT", chunks)
                )
            else:
                answer.set_rcode(dns.rcode.NXDOMAIN)
            self.socket.sendto(answer.to_wire(), peer)

    def stop(self) -> None:
        self.socket.close()


def client_for(name: str):
    """A Django test client signed in as the person called `name` ("anonymous": nobody)."""
    from django.contrib.auth.models import User
    from django.test import Client

    client = Client()
    if name != "anonymous":
        client.force_login(User.objects.get(username=name))
    return client


def email_text(message) -> str:
    """An outbox email's text as it is sent: an event's is written at delivery, for its
    reader."""
    from waiverdesk.notifications.services import written

    return written([message])[0].body


def as_read(entry) -> tuple[str, dict]:
    """An audit entry's actor and payload as people read them (names, not pseudonyms; sealed
    values opened)."""
    from waiverdesk.audit import subjects

    actor, _ref, payload = subjects.shown([entry])[0]
    return actor, payload


def pseudonym(name: str) -> str:
    """What the trail calls the person or address `name`: their pseudonym."""
    from waiverdesk.audit import subjects

    return subjects.names_for(name)[-1]
