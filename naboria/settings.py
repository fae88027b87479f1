"""Django settings for Naboria: the only module that reads the process environment.

Every backend is chosen by one variable; unset means the embedded default, so a fresh machine
runs the whole product with no servers (see README.md, "Environment variables"):

    DATABASE_URL             SQLite file under NABORIA_VAR_DIR     | postgres://...
    CLICKHOUSE_URL           chdb:///<NABORIA_VAR_DIR>/clickhouse  | http(s)://host:8123
    KAFKA_BOOTSTRAP_SERVERS  unset: events go straight to ClickHouse ("direct" path)
    MONGODB_URL              in-process document store (mongomock) | mongodb://...
    REDIS_URL                in-memory channel layer, in-process tasks, local cache | redis://...

A value that cannot be understood raises :class:`naboria.config.ConfigurationError`, which the
entry points (manage.py, asgi.py, celery.py) turn into one line naming the variable.
"""

from __future__ import annotations

import secrets
from pathlib import Path
from urllib.parse import urlsplit

import environ
import maxminddb

from naboria.config import ConfigurationError

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()


def _read(name: str, default: str = "") -> str:
    return env.str(name, default=default).strip()


def _read_bool(name: str, default: bool) -> bool:
    raw = _read(name)
    if not raw:
        return default
    if raw.lower() in {"1", "true", "yes", "on"}:
        return True
    if raw.lower() in {"0", "false", "no", "off"}:
        return False
    raise ConfigurationError(name, f"expected true or false, got {raw!r}")


def _read_int(name: str, default: int, *, minimum: int = 0) -> int:
    raw = _read(name)
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigurationError(name, f"expected an integer, got {raw!r}") from None
    if value < minimum:
        raise ConfigurationError(name, f"must be at least {minimum}, got {value}")
    return value


def _read_list(name: str, default: list[str]) -> list[str]:
    raw = _read(name)
    if not raw:
        return default
    return [item.strip() for item in raw.split(",") if item.strip()]


# --- Paths and core ----------------------------------------------------------------------------

VAR_DIR = Path(_read("NABORIA_VAR_DIR") or BASE_DIR / "var").resolve()
VAR_DIR.mkdir(parents=True, exist_ok=True)


def _secret_key() -> str:
    configured = _read("SECRET_KEY")
    if configured:
        return configured
    # Embedded profile: one random key per installation, kept so sessions survive restarts.
    key_file = VAR_DIR / "secret_key"
    if not key_file.exists():
        key_file.write_text(secrets.token_urlsafe(50))
        key_file.chmod(0o600)
    return key_file.read_text().strip()


SECRET_KEY = _secret_key()
DEBUG = _read_bool("DEBUG", False)
ALLOWED_HOSTS = _read_list("ALLOWED_HOSTS", ["127.0.0.1", "localhost", "[::1]"])
CSRF_TRUSTED_ORIGINS = _read_list("CSRF_TRUSTED_ORIGINS", [])
# Behind a TLS-terminating proxy the scheme arrives in this header.
if _read_bool("SECURE_PROXY_SSL", False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "channels",
    "naboria",
    "sites",
    "ingest",
    "ads",
    "recs",
    "consent",
    "tags",
    "analytics",
    "scans",
]

MIDDLEWARE = [
    "naboria.metrics.RequestMetricsMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "naboria.urls"
ASGI_APPLICATION = "naboria.asgi.application"

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

# --- PostgreSQL (SQLite in the embedded profile) -----------------------------------------------

DATABASE_URL = _read("DATABASE_URL") or f"sqlite:///{VAR_DIR / 'naboria.sqlite3'}"
_DATABASE_SCHEMES = {"postgres", "postgresql", "pgsql", "sqlite"}
if urlsplit(DATABASE_URL).scheme not in _DATABASE_SCHEMES:
    raise ConfigurationError(
        "DATABASE_URL",
        f"unsupported scheme in {DATABASE_URL!r}; use postgres://user:pass@host:5432/db "
        "or sqlite:////absolute/path.sqlite3",
    )
DATABASES = {"default": environ.Env.db_url_config(DATABASE_URL)}
# Not persistent by default: Django keeps a connection per thread, and under ASGI (the web and
# ingest roles) each request's synchronous code runs in a thread of its own, so persistent
# connections would be left open by the hundred until the garbage collector found them.
DATABASES["default"]["CONN_MAX_AGE"] = _read_int("DATABASE_CONN_MAX_AGE", 0)
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # The embedded web process serves many threads; WAL keeps readers off the writer's back.
    DATABASES["default"]["OPTIONS"] = {"init_command": "PRAGMA journal_mode=WAL;"}
    DATABASES["default"]["CONN_MAX_AGE"] = 0
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- ClickHouse (embedded chdb by default) ------------------------------------------------------

CLICKHOUSE_URL = _read("CLICKHOUSE_URL") or f"chdb://{VAR_DIR / 'clickhouse'}"
if urlsplit(CLICKHOUSE_URL).scheme not in {"chdb", "http", "https"}:
    raise ConfigurationError(
        "CLICKHOUSE_URL",
        f"unsupported scheme in {CLICKHOUSE_URL!r}; use chdb:///absolute/path "
        "or http(s)://user:password@host:8123",
    )
CLICKHOUSE_DATABASE = _read("CLICKHOUSE_DATABASE", "naboria")
if not CLICKHOUSE_DATABASE.replace("_", "").isalnum():
    raise ConfigurationError("CLICKHOUSE_DATABASE", "use letters, digits and underscores only")

# --- Kafka (unset: the direct path) -------------------------------------------------------------

KAFKA_BOOTSTRAP_SERVERS = _read("KAFKA_BOOTSTRAP_SERVERS")
KAFKA_TOPIC_PREFIX = _read("KAFKA_TOPIC_PREFIX", "naboria.")
KAFKA_TOPIC_PARTITIONS = _read_int("KAFKA_TOPIC_PARTITIONS", 6, minimum=1)
KAFKA_TOPIC_REPLICATION = _read_int("KAFKA_TOPIC_REPLICATION", 1, minimum=1)

# --- MongoDB (in-process store by default) ------------------------------------------------------

MONGODB_URL = _read("MONGODB_URL")
if MONGODB_URL and urlsplit(MONGODB_URL).scheme not in {"mongodb", "mongodb+srv"}:
    raise ConfigurationError(
        "MONGODB_URL", f"expected mongodb://host:27017/db, got {MONGODB_URL!r}"
    )
MONGODB_DATABASE = urlsplit(MONGODB_URL).path.lstrip("/") if MONGODB_URL else ""
MONGODB_DATABASE = MONGODB_DATABASE or _read("MONGODB_DATABASE", "naboria")

# --- Redis: channel layer, Celery broker, cache (in-process by default) -------------------------

REDIS_URL = _read("REDIS_URL")
if REDIS_URL and urlsplit(REDIS_URL).scheme not in {"redis", "rediss", "unix"}:
    raise ConfigurationError("REDIS_URL", f"expected redis://host:6379/0, got {REDIS_URL!r}")

if REDIS_URL:
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            # The default capacity of 100 drops group messages under a burst of publishes.
            "CONFIG": {"hosts": [REDIS_URL], "capacity": 5000, "expiry": 30},
        }
    }
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": "naboria",
        }
    }
    CELERY_BROKER_URL = REDIS_URL
    CELERY_TASK_ALWAYS_EAGER = False
else:
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    # Embedded profile: no broker, tasks run in the calling process.
    CELERY_BROKER_URL = "memory://"
    CELERY_TASK_ALWAYS_EAGER = True
# Without a broker there is no beat either: the web process runs the periodic jobs itself
# (naboria.embedded_beat).
EMBEDDED_BEAT = not REDIS_URL
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_IGNORE_RESULT = True
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BEAT_SCHEDULE_FILENAME = str(VAR_DIR / "celerybeat-schedule")

# --- Ingestion (collect endpoints, Kafka produce, the drain) -----------------------------------

# How many proxies in front of the web role append to X-Forwarded-For; 0 trusts REMOTE_ADDR only.
INGEST_TRUSTED_PROXIES = _read_int("INGEST_TRUSTED_PROXIES", 0)
# TEST ONLY, deliberately not read from the environment: the name of a request header whose
# value the tracking endpoints take as the visitor's country instead of the IP's (browser tests
# on loopback set it through pytest-django's settings fixture). Left None in every deployment:
# any client could choose its country with it.
GEO_TEST_COUNTRY_HEADER: str | None = None
# The IP geolocation database for region and city (ingest/geo.py, docs/geo.md): an MMDB file the
# operator supplies (MaxMind GeoLite2-City / GeoIP2-City, or DB-IP's City mmdb) instead of the
# DB-IP City Lite files that `make geodata` installs under GEO_SHIPPED_DIR.
GEO_SHIPPED_DIR = BASE_DIR / "geodata" / "node_modules" / "@ip-location-db" / "dbip-city-mmdb"
GEO_CITY_DATABASE = _read("GEO_CITY_DATABASE")
if GEO_CITY_DATABASE:
    try:  # checked now, so that a wrong file stops the process rather than every request
        maxminddb.open_database(GEO_CITY_DATABASE).close()
    except (OSError, maxminddb.InvalidDatabaseError) as error:
        raise ConfigurationError("GEO_CITY_DATABASE", f"not an MMDB file: {error}") from None
# Events wait in memory at most this long / this many before one ClickHouse insert (drain and
# the direct path alike).
INGEST_BATCH_SIZE = _read_int("INGEST_BATCH_SIZE", 1000, minimum=1)
# A drain batch keeps growing while the insert before it runs, up to this many rows: under a
# backlog inserts are few and large (each insert makes parts that ClickHouse merges later).
DRAIN_MAX_BATCH_ROWS = _read_int("DRAIN_MAX_BATCH_ROWS", 50_000, minimum=1)
INGEST_BATCH_SECONDS = float(_read_int("INGEST_BATCH_MILLISECONDS", 5000, minimum=10)) / 1000
# Page events held in memory while Kafka is unreachable; beyond it /collect answers 503.
INGEST_BUFFER_EVENTS = _read_int("INGEST_BUFFER_EVENTS", 100_000, minimum=100)
# Seconds a /collect batch or an ad event waits for its durable write (Kafka acknowledged
# it, or the direct path inserted the ad row) before the request gets a 503.
INGEST_ACK_TIMEOUT_SECONDS = 5.0
# At shutdown a sink delivers what it holds for at most this long (less when nothing moves);
# what is left is written to INGEST_SPOOL_DIR and sent again by the next process with a sink.
INGEST_SHUTDOWN_SECONDS = _read_int("INGEST_SHUTDOWN_SECONDS", 10, minimum=1)
INGEST_SPOOL_DIR = Path(_read("INGEST_SPOOL_DIR") or VAR_DIR / "spool").resolve()
# Run the drain's consumers inside every Celery worker (a bootstep); turn off to scale the
# drain separately with `python manage.py drain`.
DRAIN_IN_WORKER = _read_bool("DRAIN_IN_WORKER", True)
DRAIN_GROUP_ID = _read("DRAIN_GROUP_ID", "naboria-drain")

# --- Operations ----------------------------------------------------------------------------------

# Each entry point (web, worker, drain) checks every configured backend before it serves.
STARTUP_CHECKS = _read_bool("NABORIA_STARTUP_CHECKS", True)
HEALTH_CHECK_TIMEOUT_SECONDS = 2.0
# When set, GET /metrics requires "Authorization: Bearer <token>".
METRICS_TOKEN = _read("METRICS_TOKEN")
# Largest request body of the web and ingest roles (the tracking and ad endpoints: 64 KiB),
# refused with 413 before it is read (naboria.request_limits, naboria.web). At least the
# tracking limit, which the web role's server would otherwise refuse first. Django's own check,
# made only after reading, is the same.
WEB_MAX_BODY_BYTES = _read_int("WEB_MAX_BODY_BYTES", 4 * 1024 * 1024, minimum=64 * 1024)
DATA_UPLOAD_MAX_MEMORY_SIZE = WEB_MAX_BODY_BYTES

LOG_FORMAT = _read("LOG_FORMAT", "text").lower()
if LOG_FORMAT not in {"text", "json"}:
    raise ConfigurationError("LOG_FORMAT", f"expected text or json, got {LOG_FORMAT!r}")
LOG_LEVEL = _read("LOG_LEVEL", "INFO").upper()
if LOG_LEVEL not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
    raise ConfigurationError(
        "LOG_LEVEL", f"expected DEBUG, INFO, WARNING or ERROR, got {LOG_LEVEL!r}"
    )

# Applied with client addresses masked in the servers' records (no raw IP in any log).
LOGGING_CONFIG = "naboria.log_privacy.configure"
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "text": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
        "json": {
            "()": "pythonjsonlogger.json.JsonFormatter",
            "format": "%(asctime)s %(levelname)s %(name)s %(message)s",
            "rename_fields": {"asctime": "time", "levelname": "level", "name": "logger"},
        },
    },
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": LOG_FORMAT}},
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        # Daphne logs every request at INFO; the metrics middleware already counts them.
        "django.channels.server": {"level": "WARNING"},
        # Drivers log each failed connection attempt before raising; the raised error is
        # reported (health, start-up checks), so their own lines would only repeat it.
        "urllib3.connectionpool": {"level": "ERROR"},
        "clickhouse_connect": {"level": "ERROR"},
    },
}

# --- Sites -------------------------------------------------------------------------------------

# How long a rotated site secret keeps verifying tokens, so tracker pages open during a
# rotation keep working until their tokens are refreshed.
SITE_SECRET_GRACE_SECONDS = _read_int("SITE_SECRET_GRACE_SECONDS", 3600)

# IAB TCF: where manage.py refresh_vendor_list fetches the Global Vendor List (GVL v3), and the
# age of the list in use past which the admin and the system check consent.W001 warn.
IAB_VENDOR_LIST_URL = "https://vendor-list.consensu.org/v3/vendor-list.json"
TCF_VENDOR_LIST_URL = _read("TCF_VENDOR_LIST_URL", IAB_VENDOR_LIST_URL)
TCF_VENDOR_LIST_MAX_AGE_DAYS = _read_int("TCF_VENDOR_LIST_MAX_AGE_DAYS", 14, minimum=1)

# --- Consent ----------------------------------------------------------------------------------

# Days a consent decision record (the proof of consent) is kept before the purge job
# (consent.tasks.purge_consent_records, daily) deletes it; a banner may set its own. The proof
# must outlive the decision (re-asked after 12 months) by the time a complaint can still come.
CONSENT_RECORD_RETENTION_DAYS = _read_int("CONSENT_RECORD_RETENTION_DAYS", 1825, minimum=1)

# --- ML models (MLflow) and ad ranking ---------------------------------------------------------

# Runs, metrics and the model registry. The default is a SQLite file beside the other local
# state, so training, registering and serving work without an MLflow server. With several
# machines: a database they share (postgresql+psycopg://...) or a tracking server (http://...).
MLFLOW_TRACKING_URI = _read("MLFLOW_TRACKING_URI") or f"sqlite:///{VAR_DIR / 'mlflow.db'}"
# Where new experiments keep their artifacts (models, feature importance): a folder (shared by
# the roles that train and serve) or an object-store URI. Unset: under NABORIA_VAR_DIR, except
# with a tracking server, which chooses its own.
MLFLOW_ARTIFACT_ROOT = _read("MLFLOW_ARTIFACT_ROOT") or (
    "" if urlsplit(MLFLOW_TRACKING_URI).scheme in {"http", "https"} else str(VAR_DIR / "mlruns")
)
# Share of ad decisions drawn by weight alone, ignoring the CTR model (epsilon-greedy
# exploration), so every eligible ad keeps collecting the impressions the next model learns from.
ADS_EXPLORATION_PERCENT = _read_int("ADS_EXPLORATION_PERCENT", 10)
if ADS_EXPLORATION_PERCENT > 100:
    raise ConfigurationError("ADS_EXPLORATION_PERCENT", "must be between 0 and 100")
# How often each web process asks the registry which CTR model is the champion (a promotion
# reaches the ad server within this many seconds).
ADS_MODEL_REFRESH_SECONDS = _read_int("ADS_MODEL_REFRESH_SECONDS", 60, minimum=1)

# --- Cookie and tracker scan (scans/, docs/scans.md) --------------------------------------------

# Chromium the scanner drives through Playwright; empty: the one `playwright install chromium`
# put in place (production images), or e.g. /usr/bin/chromium (Debian's).
SCAN_CHROMIUM_PATH = _read("SCAN_CHROMIUM_PATH")
# The periodic job (hourly) scans each scheduled site whose last scan is older than this.
SCAN_INTERVAL_HOURS = _read_int("SCAN_INTERVAL_HOURS", 168, minimum=1)
# Pages per scan (home pages, configured URLs, then the most-viewed pages), and each page's
# time budget (both visits, before and after consent).
SCAN_MAX_PAGES = _read_int("SCAN_MAX_PAGES", 20, minimum=1)
SCAN_PAGE_TIMEOUT_SECONDS = _read_int("SCAN_PAGE_TIMEOUT_SECONDS", 30, minimum=1)
# Scans kept per site; older ones are deleted when a new one finishes.
SCAN_KEEP = _read_int("SCAN_KEEP", 10, minimum=1)
# Off, the scanner's browser reaches only public addresses (no loopback, private or link-local
# ones): a site's domains or pages cannot aim it at the servers around Naboria. On for an
# intranet site or a local test page.
SCAN_ALLOW_PRIVATE_NETWORKS = _read_bool("SCAN_ALLOW_PRIVATE_NETWORKS", False)
# Scheme of the home pages made from allowed domains (a domain names no scheme).
SCAN_HOME_SCHEME = "https"

# --- Django contrib, static files, i18n --------------------------------------------------------

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
STATIC_ROOT = VAR_DIR / "static"
# The tracker bundles built by `make tracker` (tracker/build.mjs), served as static files.
TRACKER_DIST_DIR = BASE_DIR / "tracker" / "dist"
STATICFILES_DIRS = [("naboria", TRACKER_DIST_DIR)]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "sites.authentication.ApiTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    # JSON only (reports add CSV), as the schema says; /api/docs/ is the interactive view.
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.PageNumberPagination",
    "PAGE_SIZE": 100,
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Naboria API",
    "DESCRIPTION": "Sites and analytics reports. Authenticate with `Authorization: Bearer nab_…`.",
    "VERSION": "1",
    # 3.1: schemas are JSON Schema (null is a type), so answers validate with any validator.
    "OAS_VERSION": "3.1.0",
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "sites.api.nullable_as_json_schema",
    ],
    "SERVE_INCLUDE_SCHEMA": False,
    # Two choice sets of fields named "interval": the traffic reports' and the app release
    # reports' (hour or day).
    "ENUM_NAME_OVERRIDES": {
        "IntervalEnum": "analytics.api_schema.INTERVALS",
        "AppReleaseIntervalEnum": "analytics.reports.app_releases.INTERVALS",
    },
    # The interactive docs are served from this installation, not from a CDN.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}
