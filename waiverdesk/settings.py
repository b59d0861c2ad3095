"""Settings, all from the environment; SQLite under WAIVERDESK_DATA_DIR by default."""

import os
from datetime import timedelta
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlparse

import dj_database_url

BASE_DIR = Path(__file__).resolve().parent
DATA_DIR = Path(os.environ.get("WAIVERDESK_DATA_DIR", BASE_DIR.parent / "var")).resolve()
DATA_DIR.mkdir(parents=True, exist_ok=True)
DEFAULT_POLICY_FILE = BASE_DIR.parent / "policies" / "default.yaml"

# `waiverdesk serve` refuses to start without WAIVERDESK_SECRET_KEY, except in a sandbox or in
# `make run`'s development mode (WAIVERDESK_DEVELOPMENT=1).
SECRET_KEY_GIVEN = bool(os.environ.get("WAIVERDESK_SECRET_KEY"))
SECRET_KEY = os.environ.get(
    "WAIVERDESK_SECRET_KEY", "insecure-development-key-set-WAIVERDESK_SECRET_KEY"
)
DEVELOPMENT = os.environ.get("WAIVERDESK_DEVELOPMENT", "") == "1"
DEBUG = os.environ.get("WAIVERDESK_DEBUG", "") == "1"
ALLOWED_HOSTS = [
    h for h in os.environ.get("WAIVERDESK_ALLOWED_HOSTS", "127.0.0.1,localhost").split(",") if h
]
SANDBOX = os.environ.get("WAIVERDESK_SANDBOX", "") == "1"

INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "axes",
    "waiverdesk.directory",
    "waiverdesk.policies",
    "waiverdesk.waivers",
    "waiverdesk.audit",
    "waiverdesk.api",
    "waiverdesk.webhooks",
    "waiverdesk.notifications",
    "waiverdesk.entitlements",
    "waiverdesk.usage",
    "waiverdesk.billing",
    "waiverdesk.governance",
    "waiverdesk.insight",
    "waiverdesk.privacy",
    "waiverdesk.worker",
]

MIDDLEWARE = [
    "waiverdesk.api.errors.json_errors",
    "django.middleware.security.SecurityMiddleware",
    "waiverdesk.web.content_security_policy",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "axes.middleware.AxesMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "waiverdesk.directory.signing_in.password_change_first",
    "waiverdesk.directory.readers.middleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "waiverdesk.waivers.attachments.limit_uploads",
    "waiverdesk.api.api.refuse_nul_bytes",
    "waiverdesk.api.idempotency.IdempotencyMiddleware",
]

ROOT_URLCONF = "waiverdesk.urls"
WSGI_APPLICATION = "waiverdesk.wsgi.application"

DATABASES = {
    "default": dj_database_url.parse(
        os.environ.get("DATABASE_URL", f"sqlite:///{DATA_DIR / 'waiverdesk.sqlite3'}"),
        conn_max_age=60,
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # IMMEDIATE takes the write lock at BEGIN, so two writers queue instead of
    # one failing with "database is locked" when it upgrades a read lock.
    DATABASES["default"]["OPTIONS"] = {
        "transaction_mode": "IMMEDIATE",
        "timeout": 20,
        # secure_delete: what is erased or overwritten is zeroed in the file, not left in
        # its free space (personal data erased on request).
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; "
        "PRAGMA secure_delete=ON;",
    }
elif DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    # PostgreSQL's JIT compiles a plan once its estimated cost passes a threshold: for the
    # short queries of a web page it costs more (20-30 ms) than it saves.
    DATABASES["default"].setdefault("OPTIONS", {}).setdefault("options", "-c jit=off")

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
USE_TZ = True
TIME_ZONE = "UTC"  # what is stored; each reader sees their own zone
LANGUAGE_CODE = "en"
# How figures and moments are written for a reader with no setting of their own and no
# browser to ask (emails, the worker): a CLDR locale and an IANA time zone.
WAIVERDESK_LOCALE = os.environ.get("WAIVERDESK_LOCALE", "en_US")
WAIVERDESK_TIME_ZONE = os.environ.get("WAIVERDESK_TIME_ZONE", "UTC")
# The customer notice's letterhead: the vendor's name, and a PNG or JPEG logo file.
ORG_NAME = os.environ.get("WAIVERDESK_ORG_NAME", "")
ORG_LOGO = os.environ.get("WAIVERDESK_ORG_LOGO", "")

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "waiverdesk.web.navigation",
            ]
        },
    }
]

# Passwords (ASVS 2.1): at least 12 characters, not one of the 20,000 most common, not like
# the person's name or address, not all digits, not the user name repeated.
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {
        "NAME": "django.contrib.auth.password_validation.MinimumLengthValidator",
        "OPTIONS": {"min_length": 12},
    },
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
    {"NAME": "waiverdesk.directory.signing_in.NotTheUsernameRepeated"},
]

# Failed sign-ins are throttled (django-axes): after AXES_FAILURE_LIMIT failures for one
# account, or from one address, sign-in waits WAIVERDESK_SIGN_IN_COOLOFF_MINUTES.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "waiverdesk.directory.signing_in.PasswordBackend",
]
AXES_FAILURE_LIMIT = int(os.environ.get("WAIVERDESK_SIGN_IN_FAILURES", "5"))
AXES_COOLOFF_TIME = timedelta(
    minutes=int(os.environ.get("WAIVERDESK_SIGN_IN_COOLOFF_MINUTES", "15"))
)
AXES_LOCKOUT_PARAMETERS = ["username", "ip_address"]  # each on its own
AXES_RESET_ON_SUCCESS = True
AXES_DISABLE_ACCESS_LOG = True  # sign-ins are in the audit trail
AXES_LOCKOUT_CALLABLE = "waiverdesk.directory.signing_in.locked_out"
AXES_CLIENT_IP_CALLABLE = "waiverdesk.directory.signing_in.client_address"
AXES_USERNAME_CALLABLE = "waiverdesk.directory.signing_in.username_of"
AXES_VERBOSE = False
# Behind a TLS proxy: WAIVERDESK_PROXY_COUNT proxies append to X-Forwarded-For (the client's
# address is read from it), and X-Forwarded-Proto says https.
PROXY_COUNT = int(os.environ.get("WAIVERDESK_PROXY_COUNT", "0"))
if PROXY_COUNT:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    USE_X_FORWARDED_HOST = os.environ.get("WAIVERDESK_USE_X_FORWARDED_HOST", "") == "1"

# Single sign-on with the company's identity provider (OpenID Connect, authorization code
# with PKCE), on when WAIVERDESK_OIDC_ISSUER is set: its endpoints and keys are discovered
# from ISSUER/.well-known/openid-configuration. People get the roles their groups map to
# (WAIVERDESK_OIDC_ROLE_MAP "idp-group=role,other-group=role"), at every sign-in. With
# WAIVERDESK_OIDC_ONLY=1 nobody signs in with a password but WAIVERDESK_BREAK_GLASS_USER.
OIDC_ISSUER = os.environ.get("WAIVERDESK_OIDC_ISSUER", "").rstrip("/")
OIDC_CLIENT_ID = os.environ.get("WAIVERDESK_OIDC_CLIENT_ID", "")
OIDC_CLIENT_SECRET = os.environ.get("WAIVERDESK_OIDC_CLIENT_SECRET", "")
OIDC_SCOPES = os.environ.get("WAIVERDESK_OIDC_SCOPES", "openid email profile")
OIDC_GROUPS_CLAIM = os.environ.get("WAIVERDESK_OIDC_GROUPS_CLAIM", "groups")
OIDC_ROLE_MAP = os.environ.get("WAIVERDESK_OIDC_ROLE_MAP", "")
OIDC_ONLY = os.environ.get("WAIVERDESK_OIDC_ONLY", "") == "1"
BREAK_GLASS_USER = os.environ.get("WAIVERDESK_BREAK_GLASS_USER", "")
OIDC_TIMEOUT = float(os.environ.get("WAIVERDESK_OIDC_TIMEOUT", "10"))  # seconds per call

# The web UI: signed-in sessions end after WAIVERDESK_IDLE_MINUTES without a request.
LOGIN_URL = "sign-in"
LOGIN_REDIRECT_URL = "home"
SESSION_COOKIE_AGE = 60 * int(os.environ.get("WAIVERDESK_IDLE_MINUTES", "30"))
SESSION_SAVE_EVERY_REQUEST = True
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_SAMESITE = "Lax"

# Served over TLS (WAIVERDESK_SECURE=1): HSTS, Secure cookies, http:// redirected to https://
# (but /healthz, for load balancers). Forms are accepted from WAIVERDESK_BASE_URL's origin
# and from WAIVERDESK_CSRF_TRUSTED_ORIGINS (comma-separated).
# waiver_customer_history_idx covers a customer's history with INCLUDE on PostgreSQL, the
# engine for scale; SQLite keeps the index on its key columns alone, which is what it needs.
SILENCED_SYSTEM_CHECKS = ["models.W040"]
SECURE = os.environ.get("WAIVERDESK_SECURE", "") == "1"
if SECURE:
    SECURE_SSL_REDIRECT = True
    SECURE_REDIRECT_EXEMPT = [r"^healthz$"]
    SECURE_HSTS_SECONDS = 31536000
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = os.environ.get("WAIVERDESK_HSTS_PRELOAD", "") == "1"
    SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = True
    # Submitting the domain to the browsers' preload list is the operator's choice.
    SILENCED_SYSTEM_CHECKS += [] if SECURE_HSTS_PRELOAD else ["security.W021"]
SESSION_COOKIE_HTTPONLY = True
X_FRAME_OPTIONS = "DENY"
# Every page: only this site's own script, style, images and forms (the UI has no inline
# script or style), never framed.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)

# The stylesheet and script are the project's own, served by WhiteNoise straight from
# the package (no collectstatic step, nothing fetched from the internet at run time). A
# pipeline that runs `collectstatic` anyway (for a proxy or a CDN to serve) names where the
# files go in WAIVERDESK_STATIC_ROOT.
STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
WHITENOISE_USE_FINDERS = True
STATIC_ROOT = os.environ.get("WAIVERDESK_STATIC_ROOT") or None

# Batches of usage records are large: up to 10,000 records in one request.
DATA_UPLOAD_MAX_MEMORY_SIZE = 16 * 2**20

ATTACHMENT_DIR = DATA_DIR / "attachments"

# The Ed25519 private key (PEM, PKCS#8) that signs audit checkpoints. Without the setting
# waiverdesk makes one under the data directory on first use; publish its public key
# (`waiverdesk audit key`) so auditors can pin it.
AUDIT_KEY_FILE = Path(os.environ.get("WAIVERDESK_AUDIT_KEY", DATA_DIR / "audit-signing-key.pem"))
AUDIT_WITNESS_TIMEOUT = float(os.environ.get("WAIVERDESK_WITNESS_TIMEOUT", "10"))  # seconds
ATTACHMENT_MAX_BYTES = int(os.environ.get("WAIVERDESK_ATTACHMENT_MAX_BYTES", 10 * 1024 * 1024))
# Uploaded files are streamed to disk as they arrive; a request carrying more than this in
# all is refused (413) before it is read.
UPLOAD_MAX_BYTES = int(os.environ.get("WAIVERDESK_UPLOAD_MAX_BYTES", 5 * ATTACHMENT_MAX_BYTES))
FILE_UPLOAD_HANDLERS = ["waiverdesk.waivers.attachments.UploadHandler"]

# An Idempotency-Key is kept this long; one whose request neither finished nor released it
# (the server died mid-request) is free again after IDEMPOTENCY_ABANDONED_SECONDS.
IDEMPOTENCY_KEY_HOURS = 24
IDEMPOTENCY_ABANDONED_SECONDS = int(
    os.environ.get("WAIVERDESK_IDEMPOTENCY_ABANDONED_SECONDS", "120")
)

# Outbound messages: EMAIL_URL (see email_settings below).
BASE_URL = os.environ.get("WAIVERDESK_BASE_URL", "http://127.0.0.1:8000").rstrip("/")
_base = urlparse(BASE_URL)
CSRF_TRUSTED_ORIGINS = sorted(
    {f"{_base.scheme}://{_base.netloc}"}
    | {
        o.strip().rstrip("/")
        for o in os.environ.get("WAIVERDESK_CSRF_TRUSTED_ORIGINS", "").split(",")
        if o.strip()
    }
)
if _base.hostname and _base.hostname not in ALLOWED_HOSTS:
    ALLOWED_HOSTS.append(_base.hostname)
DEFAULT_FROM_EMAIL = os.environ.get("WAIVERDESK_FROM_EMAIL", "waiverdesk@localhost")
ALLOW_PRIVATE_WEBHOOKS = os.environ.get("WAIVERDESK_ALLOW_PRIVATE_WEBHOOKS", "") == "1"
# A webhook delivery has this many seconds in all; up to DELIVERY_CONCURRENCY endpoints are
# sent to at once; an endpoint whose deliveries all fail for WEBHOOK_DISABLE_AFTER_DAYS is
# disabled and the person who registered it told.
WEBHOOK_TIMEOUT = float(os.environ.get("WAIVERDESK_WEBHOOK_TIMEOUT", "10"))
DELIVERY_CONCURRENCY = max(1, int(os.environ.get("WAIVERDESK_DELIVERY_CONCURRENCY", "8")))
WEBHOOK_DISABLE_AFTER = timedelta(
    days=float(os.environ.get("WAIVERDESK_WEBHOOK_DISABLE_AFTER_DAYS", "5"))
)
# Email intake believes a message only when its From domain is verified: by its DKIM
# signature (keys looked up in DNS, at WAIVERDESK_DNS_SERVER host[:port] when set), or by
# the Authentication-Results header of a receiving server whose authserv-id is listed here.
EMAIL_TRUSTED_AUTHSERV = {
    s.strip().lower()
    for s in os.environ.get("WAIVERDESK_EMAIL_TRUSTED_AUTHSERV", "").split(",")
    if s.strip()
}
DNS_SERVER = os.environ.get("WAIVERDESK_DNS_SERVER", "")
EMAIL_MAX_BYTES = int(os.environ.get("WAIVERDESK_EMAIL_MAX_BYTES", 15 * 1024 * 1024))


def witnesses(text: str) -> dict[str, str]:
    """WAIVERDESK_WITNESSES, "name=https://…" separated by commas, as {name: url}."""
    from django.core.exceptions import ImproperlyConfigured

    found = {}
    for item in filter(None, (w.strip() for w in text.split(","))):
        name, _, url = (part.strip() for part in item.partition("="))
        if not name or urlparse(url).scheme not in ("http", "https") or not urlparse(url).hostname:
            raise ImproperlyConfigured(
                f"WAIVERDESK_WITNESSES: {item!r} is not name=https://address"
            )
        found[name] = url
    return found


def email_settings(url: str) -> dict:
    """Django's email settings for EMAIL_URL: smtp://host[:25] (plain, or STARTTLS with
    ?starttls=1), submission://host[:587] (STARTTLS, required), smtps://host[:465] (TLS from
    the first byte); user:password@ before the host when the server wants them. Without a
    URL, messages are written as files under WAIVERDESK_DATA_DIR/mail."""
    parsed = urlparse(url)
    ports = {"smtp": 25, "submission": 587, "smtps": 465}
    if parsed.scheme not in ports:
        return {"EMAIL_BACKEND": "django.core.mail.backends.filebased.EmailBackend",
                "EMAIL_FILE_PATH": DATA_DIR / "mail"}  # fmt: skip
    starttls = parse_qs(parsed.query).get("starttls", ["0"])[0].lower() in ("1", "true", "yes")
    return {
        "EMAIL_BACKEND": "django.core.mail.backends.smtp.EmailBackend",
        "EMAIL_HOST": parsed.hostname,
        "EMAIL_PORT": parsed.port or ports[parsed.scheme],
        "EMAIL_HOST_USER": unquote(parsed.username or ""),
        "EMAIL_HOST_PASSWORD": unquote(parsed.password or ""),
        "EMAIL_USE_SSL": parsed.scheme == "smtps",
        "EMAIL_USE_TLS": parsed.scheme == "submission" or starttls,  # Django's name for STARTTLS
    }


globals().update(email_settings(os.environ.get("EMAIL_URL", "")))  # EMAIL_BACKEND, EMAIL_HOST…
# Witnesses: outside parties that cosign each signed checkpoint once they have checked that it
# extends the last one they cosigned: "name=https://witness.example/cosign,other=https://…".
AUDIT_WITNESSES = witnesses(os.environ.get("WAIVERDESK_WITNESSES", ""))
EMAIL_TIMEOUT = 10  # seconds for each exchange with the SMTP server

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": os.environ.get("WAIVERDESK_LOG_LEVEL", "INFO")},
    # Sign-ins are in the audit trail; django-axes need not log each one too.
    "loggers": {"axes": {"level": "WARNING"}},
}
