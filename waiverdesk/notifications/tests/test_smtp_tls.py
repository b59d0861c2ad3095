"""EMAIL_URL as mail servers run: STARTTLS on the submission port, TLS from the first byte
(smtps), and a send that fails saying why, in the outbox and in the log."""

import datetime
import ipaddress
import socket
import ssl
from email import message_from_bytes

import pytest
from aiosmtpd.controller import Controller
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from waiverdesk import settings as configuration
from waiverdesk.notifications import services as notify
from waiverdesk.notifications.models import Message
from waiverdesk.testing import NOW, once_on_sqlite

pytestmark = once_on_sqlite  # SMTP, not the database


@pytest.fixture
def certificate(tmp_path, monkeypatch):
    """A certificate for 127.0.0.1 that the client trusts (SSL_CERT_FILE, as an operator
    would point it at a private CA); the server's TLS context."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(
            "127.0.0.1"))]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )  # fmt: skip
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    monkeypatch.setenv("SSL_CERT_FILE", str(cert_file))
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert_file, key_file)
    return context


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Keep:
    def __init__(self):
        self.received = []

    async def handle_DATA(self, server, session, envelope):
        self.received.append((bool(session.ssl), message_from_bytes(envelope.content)))
        return "250 kept"


@pytest.fixture
def mail_server(certificate):
    """Start an SMTP server: `start(starttls=True)` offers (and requires) STARTTLS;
    `start(implicit=True)` speaks TLS from the first byte."""
    controllers = []

    def start(starttls=False, implicit=False):
        handler, port = Keep(), free_port()
        if implicit:
            controller = Controller(handler, hostname="127.0.0.1", port=port,
                                    ssl_context=certificate)  # fmt: skip
        else:
            controller = Controller(handler, hostname="127.0.0.1", port=port,
                                    tls_context=certificate if starttls else None,
                                    require_starttls=starttls)  # fmt: skip
        controller.start()
        controllers.append(controller)
        return handler, port

    yield start
    for controller in controllers:
        controller.stop()


def use(settings, url: str) -> None:
    for name, value in configuration.email_settings(url).items():
        setattr(settings, name, value)


def send_one(world) -> Message:
    notify.queue_email("rita@example.com", "Your request", "It was approved.", "test", NOW)
    notify.deliver(NOW)
    return Message.objects.get()


def test_the_submission_port_sends_over_starttls(world, settings, mail_server):
    handler, port = mail_server(starttls=True)
    use(settings, f"submission://127.0.0.1:{port}")
    assert settings.EMAIL_USE_TLS and not settings.EMAIL_USE_SSL
    assert send_one(world).state == Message.State.SENT
    assert [(tls, m["Subject"]) for tls, m in handler.received] == [(True, "Your request")]


def test_smtp_with_starttls_asked_for_sends_over_starttls(world, settings, mail_server):
    handler, port = mail_server(starttls=True)
    use(settings, f"smtp://127.0.0.1:{port}?starttls=1")
    assert send_one(world).state == Message.State.SENT
    assert handler.received[0][0] is True


def test_smtps_speaks_tls_from_the_first_byte(world, settings, mail_server):
    handler, port = mail_server(implicit=True)
    use(settings, f"smtps://127.0.0.1:{port}")
    assert send_one(world).state == Message.State.SENT
    assert len(handler.received) == 1
    assert configuration.email_settings("smtps://mail.example.com")["EMAIL_PORT"] == 465
    assert configuration.email_settings("submission://mail.example.com")["EMAIL_PORT"] == 587


@pytest.mark.parametrize(
    "case, said",
    [
        ("no_starttls", "does not offer STARTTLS"),
        ("plain_to_tls", "closed the connection"),
        ("nobody", "refused the connection"),
        ("untrusted", "TLS certificate is not trusted"),
    ],
)
def test_a_failed_send_says_why_in_the_outbox_and_the_log(
    world, settings, mail_server, monkeypatch, caplog, tmp_path, case, said
):
    if case == "no_starttls":
        _handler, port = mail_server()
        url = f"smtp://127.0.0.1:{port}?starttls=1"
    elif case == "plain_to_tls":
        _handler, port = mail_server(implicit=True)
        url = f"smtp://127.0.0.1:{port}"
    elif case == "nobody":
        url = f"smtp://127.0.0.1:{free_port()}"
    else:
        _handler, port = mail_server(starttls=True)
        monkeypatch.setenv("SSL_CERT_FILE", str(tmp_path / "no-such-ca.pem"))
        url = f"submission://127.0.0.1:{port}"
    use(settings, url)
    settings.EMAIL_TIMEOUT = 3
    message = send_one(world)
    assert message.state == Message.State.PENDING  # tried again later
    assert said in message.last_error and "Error(" not in message.last_error
    assert said in caplog.text
