"""Settings for every environment.

One module, driven by the environment. `DJANGO_ENV` chooses the mode and defaults to `production`:
with no environment at all the service refuses to start until its secrets and `DATABASE_URL` are
supplied, and `manage.py check --deploy` is clean once they are. Local development (SQLite, the
development secrets, the sign-up grant, `DEBUG`) is chosen explicitly with `DJANGO_ENV=local`, which
`make run` does.
"""

from datetime import timedelta
from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent.parent

env = environ.Env()
environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

DJANGO_ENV = env.str("DJANGO_ENV", default="production")
if DJANGO_ENV not in ("production", "local"):
    # A typo must not pick either mode silently.
    raise ImproperlyConfigured(f"DJANGO_ENV must be 'production' (the default) or 'local', not {DJANGO_ENV!r}")
LOCAL = DJANGO_ENV == "local"
# Everything that is refused in production is collected and reported at once.
_refused: list[str] = []

DEBUG = env.bool("DEBUG", default=LOCAL)

_DEV_SECRET = "dev-insecure-secret-key-change-me-in-production-0123456789"  # noqa: S105 - DJANGO_ENV=local only
SECRET_KEY = env.str("SECRET_KEY", default=_DEV_SECRET if LOCAL else "")
JWT_SECRET = env.str("JWT_SECRET", default=_DEV_SECRET if LOCAL else "")
# Keyed on the mode, not on DEBUG: DEBUG=true in production must not bring the development secrets back.
if not LOCAL:
    if len(SECRET_KEY) < 50 or SECRET_KEY == _DEV_SECRET:
        _refused.append("SECRET_KEY must be set (at least 50 characters, not the development value)")
    if len(JWT_SECRET) < 32 or JWT_SECRET == _DEV_SECRET:
        _refused.append("JWT_SECRET must be set (at least 32 characters, not the development value)")

ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]", "testserver"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])
CORS_ALLOWED_ORIGINS = env.list("CORS_ALLOWED_ORIGINS", default=[])
CORS_EXPOSE_HEADERS = [
    "X-Trace-ID",
    "Idempotent-Replayed",
    "X-RateLimit-Limit",
    "X-RateLimit-Remaining",
    "X-RateLimit-Reset",
    "Retry-After",
]
CORS_ALLOW_HEADERS = (
    "accept",
    "authorization",
    "content-type",
    "idempotency-key",
    "x-trace-id",
)

INSTALLED_APPS = [
    "console.apps.ConsoleAdminConfig",  # django.contrib.admin, with the ops console as its site
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "corsheaders",
    "rest_framework",
    "rest_framework_simplejwt.token_blacklist",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_prometheus",
    "wallet_project.core",
    "accounts",
    "currencies",
    "wallets",
    "transactions",
    "holds",
    "audit",
    "events",
    "webhooks",
    "console",
]

MIDDLEWARE = [
    "django_prometheus.middleware.PrometheusBeforeMiddleware",
    "wallet_project.core.tracing.TraceIdMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "corsheaders.middleware.CorsMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "wallet_project.core.security.NoStoreMiddleware",
    "wallet_project.core.ratelimit.RateLimitMiddleware",
    "wallet_project.core.metrics.TransferMetricsMiddleware",
    "django_prometheus.middleware.PrometheusAfterMiddleware",
]

ROOT_URLCONF = "wallet_project.urls"
CSRF_FAILURE_VIEW = "wallet_project.core.errors.csrf_failure"
WSGI_APPLICATION = "wallet_project.wsgi.application"
APPEND_SLASH = False

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- Database -------------------------------------------------------------------------------
# PostgreSQL in production and tests; a SQLite file is the embedded default for local runs only.
if LOCAL or env.str("DATABASE_URL", default=""):
    DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}")}
else:
    _refused.append("DATABASE_URL must be set (PostgreSQL)")
    DATABASES = {"default": {"ENGINE": "django.db.backends.dummy"}}
_db = DATABASES["default"]
if _db["ENGINE"] == "django.db.backends.sqlite3":
    # IMMEDIATE takes the write lock at BEGIN, so two transfers serialize instead of one
    # reading a balance the other is about to change.
    _db["OPTIONS"] = {
        "transaction_mode": "IMMEDIATE",
        "timeout": 20,
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA busy_timeout=20000;",
    }
else:
    _db["CONN_MAX_AGE"] = env.int("DB_CONN_MAX_AGE", default=60)
    _db["CONN_HEALTH_CHECKS"] = True
    # Nothing may hang a worker: a held lock or a stuck statement fails fast and cleanly.
    _db["OPTIONS"] = {
        "options": " ".join(
            [
                f"-c lock_timeout={env.int('DB_LOCK_TIMEOUT_MS', default=5000)}",
                f"-c statement_timeout={env.int('DB_STATEMENT_TIMEOUT_MS', default=15000)}",
                f"-c idle_in_transaction_session_timeout={env.int('DB_IDLE_IN_TRANSACTION_TIMEOUT_MS', default=30000)}",
            ]
        ),
        "connect_timeout": env.int("DB_CONNECT_TIMEOUT_S", default=5),
        # Server-side prepared statements for the few statements that ask for them (the transfer's lock
        # and write, see core.db.prepared_cursor): planning them was a large share of PostgreSQL's CPU
        # per transfer (docs/benchmarks.md). The ORM's own queries use client-side binding and are never
        # prepared. Set to false behind a pooler that cannot keep prepared statements (PgBouncer before
        # 1.21 in transaction mode).
        "prepare_threshold": 0 if env.bool("DB_PREPARED_STATEMENTS", default=True) else None,
    }

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
AUTH_USER_MODEL = "accounts.User"

PASSWORD_HASHERS = [
    "django.contrib.auth.hashers.Argon2PasswordHasher",
    # Legacy hashes imported from the Go service ($2a$/$2b$); upgraded to Argon2 on login.
    "accounts.hashers.LegacyBcryptHasher",
    "django.contrib.auth.hashers.PBKDF2PasswordHasher",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 8}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"
        if not DEBUG
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}

DATA_UPLOAD_MAX_MEMORY_SIZE = env.int("MAX_BODY_BYTES", default=64 * 1024)

# --- Cache (rate limit counters) -------------------------------------------------------------
# Local memory is one cache per process: in production core.checks refuses it while limits are on.
REDIS_URL = env.str("REDIS_URL", default="")
if REDIS_URL:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}}
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

# --- REST framework ---------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "accounts.authentication.JWTAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    # JSON only: form and multipart bodies went through none of the JSON parser's rules (Decimal numbers,
    # depth, UTF-8) and the schema advertised them. The browsable API posts its raw form as JSON.
    "DEFAULT_PARSER_CLASSES": ["wallet_project.core.parsers.DecimalJSONParser"],
    "DEFAULT_RENDERER_CLASSES": [
        "rest_framework.renderers.JSONRenderer",
        "rest_framework.renderers.BrowsableAPIRenderer",
    ],
    "EXCEPTION_HANDLER": "wallet_project.core.errors.exception_handler",
    "DEFAULT_THROTTLE_CLASSES": ["wallet_project.core.ratelimit.RateLimitThrottle"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "COERCE_DECIMAL_TO_STRING": True,
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
}

JWT_ACCESS_LIFETIME = timedelta(seconds=env.int("JWT_ACCESS_TTL_SECONDS", default=86400))
SIMPLE_JWT = {
    "ACCESS_TOKEN_LIFETIME": JWT_ACCESS_LIFETIME,
    "REFRESH_TOKEN_LIFETIME": timedelta(seconds=env.int("JWT_REFRESH_TTL_SECONDS", default=7 * 86400)),
    "ROTATE_REFRESH_TOKENS": True,
    "BLACKLIST_AFTER_ROTATION": True,
    "UPDATE_LAST_LOGIN": False,
    "ALGORITHM": "HS256",
    "SIGNING_KEY": JWT_SECRET,
    "AUTH_HEADER_TYPES": ("Bearer",),
    "USER_ID_FIELD": "id",
    "USER_ID_CLAIM": "user_id",
    "TOKEN_TYPE_CLAIM": "token_type",
    "JTI_CLAIM": "jti",
    "LEEWAY": 0,
}

SPECTACULAR_SETTINGS = {
    "TITLE": "Wallet API",
    "DESCRIPTION": (
        "Multi-currency wallet backend: users, wallets, transfers that never create or lose money, "
        "paginated history, a hash-chained audit trail and tx.created events. Errors are "
        "application/problem+json with `code`, `error` and `trace_id`."
    ),
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    # Swagger UI and ReDoc assets served from this app (drf-spectacular-sidecar), not a CDN.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "SECURITY": [{"jwtAuth": []}],
    "APPEND_COMPONENTS": {"securitySchemes": {"jwtAuth": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}}},
}

# --- Product settings -------------------------------------------------------------------------
DEFAULT_CURRENCY = env.str("DEFAULT_CURRENCY", default="USDT")
# "CODE:AMOUNT[,CODE:AMOUNT]"; recorded as a deposit at sign-up. On locally, off unless set in production.
SIGNUP_GRANT = env.str("SIGNUP_GRANT", default="USDT:1000" if LOCAL else "")
# Ed25519 seed (32 bytes, hex) signing transaction receipts. Derived from SECRET_KEY in local mode.
RECEIPT_SIGNING_KEY = env.str("RECEIPT_SIGNING_KEY", default="")
if not LOCAL and not RECEIPT_SIGNING_KEY:
    _refused.append("RECEIPT_SIGNING_KEY must be set (64 hex characters)")
if _refused:
    raise ImproperlyConfigured(
        "production settings (DJANGO_ENV is unset or 'production') refuse to start: "
        + "; ".join(_refused)
        + ". Generate the secrets as .env.example shows, or choose local development with DJANGO_ENV=local."
    )
# Checked here, not at the first transfer: a malformed seed would otherwise fail every signature.
if RECEIPT_SIGNING_KEY and (
    len(RECEIPT_SIGNING_KEY) != 64 or not all(c in "0123456789abcdefABCDEF" for c in RECEIPT_SIGNING_KEY)
):
    raise ImproperlyConfigured("RECEIPT_SIGNING_KEY must be 64 hex characters (a 32-byte Ed25519 seed)")
# Public keys (hex) of retired receipt keys: ledger checkpoints signed before a rotation still verify.
RECEIPT_PREVIOUS_PUBLIC_KEYS = env.list("RECEIPT_PREVIOUS_PUBLIC_KEYS", default=[])
# The ops console's dashboard (console/dashboard.py): how long its figures are reused (0: read on every
# load; the page says "as of"), and what "expiring soon" means for an active hold.
CONSOLE_CACHE_SECONDS = env.int("CONSOLE_CACHE_SECONDS", default=5)
HOLDS_EXPIRING_SOON_MINUTES = env.int("HOLDS_EXPIRING_SOON_MINUTES", default=60)
IDEMPOTENCY_KEY_RETENTION_HOURS = env.int("IDEMPOTENCY_KEY_RETENTION_HOURS", default=24)
DB_RETRY_ATTEMPTS = env.int("DB_RETRY_ATTEMPTS", default=3)
# PostgreSQL work_mem for the reconcile transaction only (its sorts and aggregates over the whole ledger).
RECONCILE_WORK_MEM = env.str("RECONCILE_WORK_MEM", default="256MB")
# Currencies are read on every money request; each process keeps the table this many seconds.
CURRENCY_CACHE_SECONDS = env.float("CURRENCY_CACHE_SECONDS", default=5.0)

# --- Kafka ----------------------------------------------------------------------------------
KAFKA_BOOTSTRAP_SERVERS = env.str("KAFKA_BOOTSTRAP_SERVERS", default="")
KAFKA_TOPIC = env.str("KAFKA_TOPIC", default="tx.created")
# Signed ledger checkpoints (``manage.py checkpoint``), one small event each.
KAFKA_CHECKPOINT_TOPIC = env.str("KAFKA_CHECKPOINT_TOPIC", default="ledger.checkpoints")
# hold.* and withdrawal.* events (holds app), keyed by the hold's or the request's id.
KAFKA_WALLET_EVENTS_TOPIC = env.str("KAFKA_WALLET_EVENTS_TOPIC", default="wallet.events")
KAFKA_TOPIC_PARTITIONS = env.int("KAFKA_TOPIC_PARTITIONS", default=3)
KAFKA_TOPIC_REPLICATION = env.int("KAFKA_TOPIC_REPLICATION", default=1)
# How long the producer keeps retrying a message before reporting it failed (the relay then takes over).
KAFKA_DELIVERY_TIMEOUT_MS = env.int("KAFKA_DELIVERY_TIMEOUT_MS", default=10000)

# webhook.endpoint_disabled (webhooks app): the webhooks' own events, for staff endpoints and consumers.
KAFKA_WEBHOOK_EVENTS_TOPIC = env.str("KAFKA_WEBHOOK_EVENTS_TOPIC", default="webhook.events")

# --- Webhooks (docs/webhooks.md) -------------------------------------------------------------
# http and loopback/private targets: local development and tests only. Production: https to public addresses.
WEBHOOK_ALLOW_PRIVATE_TARGETS = env.bool("WEBHOOK_ALLOW_PRIVATE_TARGETS", default=False)
WEBHOOK_CONNECT_TIMEOUT_SECONDS = env.float("WEBHOOK_CONNECT_TIMEOUT_SECONDS", default=5.0)
# The whole attempt: resolving, connecting, sending, the response and the part of its body that is read.
WEBHOOK_TIMEOUT_SECONDS = env.float("WEBHOOK_TIMEOUT_SECONDS", default=15.0)
# A worker's claim on a delivery it is sending; a killed worker's delivery is taken again after it.
WEBHOOK_LEASE_SECONDS = env.float("WEBHOOK_LEASE_SECONDS", default=60.0)
WEBHOOK_MAX_BODY_BYTES = env.int("WEBHOOK_MAX_BODY_BYTES", default=256 * 1024)
WEBHOOK_MAX_RESPONSE_BYTES = env.int("WEBHOOK_MAX_RESPONSE_BYTES", default=4096)
WEBHOOK_SECRET_GRACE_SECONDS = env.int("WEBHOOK_SECRET_GRACE_SECONDS", default=24 * 3600)
# Seconds to wait after the 1st, 2nd ... failure (the last repeats), each ±20 %; until the horizon.
WEBHOOK_RETRY_SCHEDULE = [
    float(s) for s in env.list("WEBHOOK_RETRY_SCHEDULE", default=["5", "300", "1800", "7200", "18000", "36000"])
]
WEBHOOK_RETRY_HORIZON_SECONDS = env.float("WEBHOOK_RETRY_HORIZON_SECONDS", default=3 * 24 * 3600)
WEBHOOK_DISABLE_AFTER_FAILURES = env.int("WEBHOOK_DISABLE_AFTER_FAILURES", default=5)
WEBHOOK_MAX_ENDPOINTS_PER_USER = env.int("WEBHOOK_MAX_ENDPOINTS_PER_USER", default=10)
# Encrypts the stored signing secrets (HKDF-derived Fernet key); SECRET_KEY when unset.
WEBHOOK_SECRET_KEY = env.str("WEBHOOK_SECRET_KEY", default="")
if not WEBHOOK_RETRY_SCHEDULE or min(WEBHOOK_RETRY_SCHEDULE) <= 0:
    raise ImproperlyConfigured("WEBHOOK_RETRY_SCHEDULE must list positive numbers of seconds")
if WEBHOOK_LEASE_SECONDS <= WEBHOOK_TIMEOUT_SECONDS:
    # Else a slow but live attempt could lose its lease and the delivery go out twice at once.
    raise ImproperlyConfigured("WEBHOOK_LEASE_SECONDS must be longer than WEBHOOK_TIMEOUT_SECONDS")

# --- Rate limiting (django-ratelimit) ---------------------------------------------------------
RATELIMIT_ENABLE = env.bool("RATELIMIT_ENABLE", default=True)
RATELIMIT_DEFAULT = env.str("RATELIMIT_DEFAULT", default="60/m")
RATELIMIT_LOGIN = env.str("RATELIMIT_LOGIN", default="5/m")
RATELIMIT_LOOKUP = env.str("RATELIMIT_LOOKUP", default="20/m")
RATELIMIT_SIGNUP = env.str("RATELIMIT_SIGNUP", default="5/m")
# Proxies (addresses or networks) whose X-Forwarded-For is believed; others cannot spoof the client IP.
TRUSTED_PROXIES = env.list("TRUSTED_PROXIES", default=[])
RATELIMIT_VIEW = "wallet_project.core.ratelimit.ratelimited_view"
SILENCED_SYSTEM_CHECKS = env.list("SILENCED_SYSTEM_CHECKS", default=[])

# --- Security -------------------------------------------------------------------------------
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"
SECURE_REFERRER_POLICY = "same-origin"
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https") if env.bool("BEHIND_TLS_PROXY", default=False) else None
# On in production whatever DEBUG says: turning DEBUG on to look at a fault must not turn these off.
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=not LOCAL)
SECURE_REDIRECT_EXEMPT = [r"^health$", r"^ready$"]
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=0 if LOCAL else 31536000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = not LOCAL
SECURE_HSTS_PRELOAD = not LOCAL
SESSION_COOKIE_SECURE = not LOCAL
CSRF_COOKIE_SECURE = not LOCAL
SESSION_COOKIE_HTTPONLY = True

# --- Logging: one JSON object per line, each carrying the request's trace_id -------------------
LOG_LEVEL = env.str("LOG_LEVEL", default="INFO")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"trace": {"()": "wallet_project.core.tracing.TraceIdLogFilter"}},
    "formatters": {"json": {"()": "wallet_project.core.logging.JsonFormatter"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "json", "filters": ["trace"]}},
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        "django.server": {"level": "WARNING"},
        "django.request": {"level": "ERROR"},
    },
}
