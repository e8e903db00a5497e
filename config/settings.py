"""Settings, read from the environment (django-environ).

With no environment at all Distillery runs on SQLite with an embedded broker, so a bare machine can
serve the demo. Production sets DATABASE_URL, CELERY_BROKER_URL, SECRET_KEY and friends.
"""

import ipaddress
import os
from pathlib import Path

import environ
from csp.constants import NONE, SELF, UNSAFE_INLINE
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent

# Every variable may also be given as a file holding its value (SECRET_KEY_FILE=/run/secrets/key),
# as Docker and compose secrets are.
env = environ.FileAwareEnv()
# A `.env` beside manage.py (make writes the checkout's secret key there); DISTILLERY_ENV_FILE names
# another file (tests point it at an empty one to see the app as a bare server would).
environ.FileAwareEnv.read_env(
    os.environ.get("DISTILLERY_ENV_FILE", str(BASE_DIR / ".env")), overwrite=False
)

DEBUG = env.bool("DEBUG", default=False)
SECRET_KEY = env.str("SECRET_KEY", default="")
if not SECRET_KEY:
    # A server never runs on a key that is in the repository: sessions, CSRF tokens and password
    # reset links would be forgeable. Development (DEBUG on) and the test run (pytest sets
    # PYTEST_VERSION, which its subprocesses inherit) use a fixed key.
    if not (DEBUG or "PYTEST_VERSION" in os.environ):
        raise ImproperlyConfigured(
            "SECRET_KEY is not set. Set it in the environment (or SECRET_KEY_FILE, or a .env file "
            "beside manage.py), e.g. "
            'SECRET_KEY=$(python3 -c "import secrets; print(secrets.token_urlsafe(50))"); '
            "set DEBUG=true to run with an insecure development key instead."
        )
    SECRET_KEY = "distillery-insecure-development-key-change-me"
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "testserver"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])
# A form refused for its token gets the site's 403 page saying what to do, not Django's bare one.
CSRF_FAILURE_VIEW = "config.error_pages.csrf_failure"

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_htmx",
    "accounts",
    "generation",
    "annotation",
    "evaluation",
    "judges",
    "critics",
    "students",
    "comparisons",
    "demo",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "config.middleware.PageCSPMiddleware",
    "config.middleware.RejectNulMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "config.middleware.NoStoreMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "accounts.middleware.LoginRequiredMiddleware",
]

ROOT_URLCONF = "config.urls"

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
            ],
        },
    },
]

WSGI_APPLICATION = "config.wsgi.application"
ASGI_APPLICATION = "config.asgi.application"

DATABASES = {
    "default": env.db("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}"),
}
DATABASES["default"]["CONN_MAX_AGE"] = env.int("CONN_MAX_AGE", default=60)
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Waiting on a lock beats failing with "database is locked" when web and worker write at once.
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {"timeout": 20, "transaction_mode": "IMMEDIATE"}
    )
    DATABASES["default"]["CONN_MAX_AGE"] = 0
elif DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql" and env.bool(
    "DATABASE_PREPARED", default=True
):
    # The annotators' hot path runs prepared statements (config/prepared.py); Django's own
    # queries are never prepared, so this threshold is never reached by them.
    DATABASES["default"].setdefault("OPTIONS", {}).setdefault("prepare_threshold", 2**31 - 1)

CACHES = {"default": env.cache("CACHE_URL", default="locmemcache://")}

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    # Not a check: a new password, however it is set, revokes the account's API token.
    {"NAME": "accounts.passwords.RevokeTokensOnPasswordChange"},
]

# Login throttling at every door that checks a password (accounts/throttling.py): failures allowed
# per username and client address, and per client address whatever the username, before a cool-down.
LOGIN_FAILURE_LIMIT = env.int("LOGIN_FAILURE_LIMIT", default=5)
LOGIN_ADDRESS_FAILURE_LIMIT = env.int("LOGIN_ADDRESS_FAILURE_LIMIT", default=50)
LOGIN_COOLDOWN_SECONDS = env.int("LOGIN_COOLDOWN_SECONDS", default=900)
# Proxies (addresses or networks) whose X-Forwarded-For names the client; without any, the client is
# REMOTE_ADDR. A bad entry stops the start rather than trusting the wrong hop.
DISTILLERY_TRUSTED_PROXIES = [
    str(ipaddress.ip_network(proxy.strip(), strict=False))
    for proxy in env.list("DISTILLERY_TRUSTED_PROXIES", default=[])
    if proxy.strip()
]
# API tokens stop working this long after they were issued (a new password or a revoke ends them).
DISTILLERY_TOKEN_TTL_HOURS = env.int("DISTILLERY_TOKEN_TTL_HOURS", default=24)
if DISTILLERY_TOKEN_TTL_HOURS < 1:
    raise ValueError("DISTILLERY_TOKEN_TTL_HOURS must be at least 1")

LOGIN_URL = "accounts:login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "accounts:login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = env.str("TIME_ZONE", default="UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = Path(env.str("STATIC_ROOT", default=str(BASE_DIR / "staticfiles")))
MEDIA_URL = "media/"
MEDIA_ROOT = Path(env.str("MEDIA_ROOT", default=str(BASE_DIR / "media")))
WHITENOISE_USE_FINDERS = True
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}

# Uploaded import files may be large; Django streams anything above this to a temp file. Bodies
# (other than uploaded files) above it, or with more than DATA_UPLOAD_MAX_NUMBER_FIELDS fields, are
# refused with a 400: JSON under /api/ (config.errors.bad_request).
DATA_UPLOAD_MAX_MEMORY_SIZE = env.int("DATA_UPLOAD_MAX_MEMORY_SIZE", default=10 * 1024 * 1024)
FILE_UPLOAD_MAX_MEMORY_SIZE = 10 * 1024 * 1024

# Images are checked with Pillow and refused above these limits.
DISTILLERY_MAX_IMAGE_BYTES = env.int("DISTILLERY_MAX_IMAGE_BYTES", default=20 * 1024 * 1024)
DISTILLERY_MAX_IMAGE_PIXELS = env.int("DISTILLERY_MAX_IMAGE_PIXELS", default=40_000_000)
# Uploaded zips of images (generation/importers/archives.py), checked before anything is
# extracted: at most this many files, expanding to at most this many bytes in all, and to at most
# this many times their compressed size in all (beyond the first MiB).
DISTILLERY_ZIP_MAX_FILES = env.int("DISTILLERY_ZIP_MAX_FILES", default=500_000)
DISTILLERY_ZIP_MAX_BYTES = env.int("DISTILLERY_ZIP_MAX_BYTES", default=4 * 1024**3)
DISTILLERY_ZIP_MAX_RATIO = env.int("DISTILLERY_ZIP_MAX_RATIO", default=100)
# A line longer than this in an import file is refused rather than parsed.
DISTILLERY_MAX_LINE_BYTES = env.int("DISTILLERY_MAX_LINE_BYTES", default=1024 * 1024)
# Imports may skip PostgreSQL's per-row foreign key checks (session_replication_role = replica, a
# third of an import's time) only when an operator opts in: it needs a superuser, or a role granted
# SET on that parameter, and such a role can write rows that point nowhere. The compose setup's
# application role is no superuser, so the checks always run there.
DISTILLERY_IMPORT_SKIP_FK_CHECKS = env.bool("DISTILLERY_IMPORT_SKIP_FK_CHECKS", default=False)

# Batch runner (generation/runner/): a runner's lease outlives a heartbeat by this much before
# another may take the batch over; results are written every FLUSH_SECONDS or FLUSH_RESULTS;
# retryable failures back off exponentially from RETRY_BASE to RETRY_MAX seconds, with jitter.
DISTILLERY_BATCH_LEASE_SECONDS = env.float("DISTILLERY_BATCH_LEASE_SECONDS", default=10.0)
DISTILLERY_FLUSH_SECONDS = env.float("DISTILLERY_FLUSH_SECONDS", default=0.2)
DISTILLERY_FLUSH_RESULTS = env.int("DISTILLERY_FLUSH_RESULTS", default=200)
DISTILLERY_RETRY_BASE_SECONDS = env.float("DISTILLERY_RETRY_BASE_SECONDS", default=1.0)
DISTILLERY_RETRY_MAX_SECONDS = env.float("DISTILLERY_RETRY_MAX_SECONDS", default=60.0)
DISTILLERY_RETRY_MAX_ATTEMPTS = env.int("DISTILLERY_RETRY_MAX_ATTEMPTS", default=6)
# Rate limits (429) are waited out for up to this long per call, however many attempts it takes.
DISTILLERY_RATE_LIMIT_PATIENCE_SECONDS = env.float(
    "DISTILLERY_RATE_LIMIT_PATIENCE_SECONDS", default=600.0
)
# Posts per task on the `gpu` queue (local models generate a chunk as one batch).
DISTILLERY_GPU_CHUNK_SIZE = env.int("DISTILLERY_GPU_CHUNK_SIZE", default=16)

# Model endpoints (generation/backends/guard.py, docs/security.md): the environment variables an
# API key may come from (a trailing * is a prefix; Django, database and broker variables never
# qualify), and whether a model server may be on loopback or a private network (a vLLM beside the
# app): on by default only in development (DEBUG) and under the tests; `manage.py demo` turns it on.
# Link-local and cloud metadata addresses are always refused.
DISTILLERY_API_KEY_ENV_ALLOWED = env.list(
    "DISTILLERY_API_KEY_ENV_ALLOWED", default=["OPENAI_API_KEY", "DISTILLERY_KEY_*"]
)
DISTILLERY_ALLOW_PRIVATE_ENDPOINTS = env.bool(
    "DISTILLERY_ALLOW_PRIVATE_ENDPOINTS", default=DEBUG or "PYTEST_VERSION" in os.environ
)

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        # Token first, so an unauthenticated API call gets 401 with a WWW-Authenticate header.
        "accounts.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PARSER_CLASSES": [
        "config.parsers.SafeJSONParser",
        "config.parsers.SafeFormParser",
        "config.parsers.SafeMultiPartParser",
    ],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.PageNumberPagination",
    # ApplicationError and Django's ValidationError become 4xx answers; other errors stay 500s.
    "EXCEPTION_HANDLER": "config.errors.exception_handler",
    "PAGE_SIZE": 50,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Distillery API",
    "DESCRIPTION": "Import posts, generate knowledge, rate it, measure agreement, export.",
    "VERSION": "0.1.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_PERMISSIONS": ["rest_framework.permissions.IsAuthenticated"],
    "COMPONENT_SPLIT_REQUEST": True,
    # Swagger UI is served from our own static files (drf-spectacular-sidecar), never a CDN.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # <id:...> (config/converters.py) is an integer in the schema, as <int:...> was.
    "PATH_CONVERTER_OVERRIDES": {
        "id": {"type": "integer", "format": "int64", "minimum": 0, "maximum": 2**63 - 1}
    },
    # Several models have a `status`; name each enum after its model.
    "ENUM_NAME_OVERRIDES": {
        "BatchStatusEnum": "generation.models.Batch.Status",
        "StageResultStatusEnum": "generation.models.StageResult.Status",
        "JobStatusEnum": "generation.models.JobStatus",
        "AssignmentStatusEnum": "annotation.models.Assignment.Status",
        "BackendEnum": "generation.models.Endpoint.Backend",
    },
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "config.openapi.add_error_responses",
    ],
}

# Celery. The embedded default is a SQLAlchemy-free filesystem broker, so the demo needs no service.
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default="filesystem://")
CELERY_BROKER_TRANSPORT_OPTIONS = {}
if CELERY_BROKER_URL.startswith("filesystem"):
    BROKER_FOLDER = Path(env.str("BROKER_FOLDER", default=str(BASE_DIR / ".broker")))
    # kombu's filesystem transport expects its folders to exist.
    (BROKER_FOLDER / "queue").mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(BROKER_FOLDER / "queue"),
        "data_folder_out": str(BROKER_FOLDER / "queue"),
        "control_folder": str(BROKER_FOLDER / "control"),
        "store_processed": False,
    }
CELERY_RESULT_BACKEND = env.str("CELERY_RESULT_BACKEND", default=None) or None
CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_TASK_ALWAYS_EAGER", default=False)
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_DEFAULT_QUEUE = "default"
CELERY_TASK_ROUTES = {
    "generation.tasks.gpu_*": {"queue": "gpu"},
    "students.tasks.gpu_*": {"queue": "gpu"},
}
CELERY_TIMEZONE = TIME_ZONE
# annotation: expired leases go back to the pool every minute (claims also expire them lazily).
CELERY_BEAT_SCHEDULE = {
    "annotation-leases-expire": {"task": "annotation.tasks.leases_expire_task", "schedule": 60.0},
}

# Security headers everywhere; cookies and redirects for HTTPS when it terminates in front of us.
SESSION_COOKIE_HTTPONLY = True
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
# Content-Security-Policy (django-csp) on every page: scripts, styles, images and requests from this
# site only, so markup that slips into a page (campaign instructions may hold images) can neither
# run nor fetch from elsewhere. No page has inline scripts. Progress bars set their width in a
# style attribute, hence style-src-attr; <style> elements stay refused. Media files carry their own,
# stricter policy (config/media.py). Authenticated pages and every API answer are also sent with
# `Cache-Control: no-store` (config.middleware.NoStoreMiddleware).
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF],
        "style-src": [SELF],
        "style-src-attr": [UNSAFE_INLINE],
        "img-src": [SELF, "data:"],
        "connect-src": [SELF],
        "font-src": [SELF],
        "object-src": [NONE],
        "base-uri": [SELF],
        "form-action": [SELF],
        "frame-ancestors": [NONE],
    },
}
if env.bool("DISTILLERY_HTTPS", default=False):
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=True)
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=31_536_000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="WARNING")},
}
