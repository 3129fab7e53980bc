"""Settings for fazhi_flow.

They live inside the package so that an installed wheel has them too; config.py at the top of the
checkout re-exports them. Three classes (development, testing, production); every setting can be overridden from the environment
with the ``FAZHI_`` prefix, e.g. ``FAZHI_DATABASE_URL`` or ``FAZHI_SECRET_KEY``.
"""
import os

DEFAULT_SECRET = "dev-not-secret"


class Config:
    SECRET_KEY = DEFAULT_SECRET
    # None means: a SQLite file in the instance folder (filled in by create_app).
    DATABASE_URL = None
    SQLALCHEMY_ENGINE_OPTIONS = {}
    TIMEZONE = "Asia/Shanghai"
    # Base address used in links inside e-mails and webhook messages.
    BASE_URL = "http://127.0.0.1:5000"
    MAIL_HOST = "localhost"
    MAIL_PORT = 25
    MAIL_USERNAME = ""
    MAIL_PASSWORD = ""
    MAIL_SECURITY = "none"  # none | starttls | ssl
    MAIL_SENDER = "fazhi-flow@localhost"
    MAIL_TIMEOUT = 10
    WEBHOOK_TIMEOUT = 10
    # Hours after which a message that is not a reminder and could not be sent is given up (dead).
    # Reminders end with their stage instead (submitted, due date moved or passed, a newer reminder).
    OUTBOX_MAX_AGE_HOURS = 48
    # Longest wait between two probes of a failing channel (seconds): by default one probe every
    # delivery run, so that the queue drains within one run of the server's return.
    OUTBOX_PROBE_MAX_SECONDS = 30
    # Up to how much approved material (characters, contributions) the compile page shows every
    # section's texts itself; beyond, each section opens on its own page.
    COMPILE_INLINE_MAX_CHARS = 200_000
    COMPILE_INLINE_MAX_ITEMS = 400
    # Units per page of the progress matrix.
    DASHBOARD_UNITS_PER_PAGE = 50
    # Start APScheduler inside the web process (only the one-process demo does this).
    SCHEDULER_IN_PROCESS = False
    # /readyz fails when no scheduler heartbeat is younger than SCHEDULER_STALE_SECONDS, where a
    # scheduler process is expected (production; elsewhere the demo's in-process one is optional).
    SCHEDULER_EXPECTED = False
    SCHEDULER_STALE_SECONDS = 180
    # Logs on stderr: level DEBUG | INFO | WARNING | ERROR, format text (key=value) | json.
    LOG_LEVEL = "INFO"
    LOG_FORMAT = "text"
    # /metrics answers these addresses or networks (comma-separated), or a request carrying
    # "Authorization: Bearer <METRICS_TOKEN>" (empty: no token accepted); anyone else gets a 404.
    METRICS_ALLOWED_IPS = "127.0.0.1,::1"
    METRICS_TOKEN = ""
    UPLOAD_FOLDER = None  # None: <instance>/uploads
    # Where attachment bytes live: "folder" (files under UPLOAD_FOLDER, one web machine) or
    # "database" (table attachment_blob, so several web machines share them).
    ATTACHMENT_STORAGE = "folder"
    MAX_CONTENT_LENGTH = 20 * 1024 * 1024
    # Reverse proxies in front of the app whose X-Forwarded-For/-Proto are trusted (0: none). Behind
    # nginx every request would otherwise come from 127.0.0.1: one login throttle for the whole site.
    TRUSTED_PROXIES = 0
    # ...and only when the request comes from one of these addresses or networks (comma-separated):
    # a client reaching gunicorn's port directly cannot claim another address by sending the header.
    TRUSTED_PROXY_IPS = "127.0.0.1,::1"
    # Server-side session limits (ASVS L2): logged out after this long without a request, and this
    # long after the login whatever happens.
    SESSION_IDLE_MINUTES = 120
    SESSION_ABSOLUTE_HOURS = 12
    # How long a browser that has logged in keeps its own login-failure allowance (device cookie).
    DEVICE_COOKIE_DAYS = 180
    DEVICE_COOKIE_NAME = "fazhi_device"
    WTF_CSRF_TIME_LIMIT = None
    SESSION_COOKIE_HTTPONLY = True
    SESSION_COOKIE_SAMESITE = "Lax"
    REMEMBER_COOKIE_HTTPONLY = True
    # Single sign-on (统一身份认证), both optional; docs/sso.md explains them. OpenID Connect is on when
    # OIDC_ISSUER and OIDC_CLIENT_ID are set: the provider's address, from which
    # /.well-known/openid-configuration is read.
    OIDC_ISSUER = ""
    OIDC_CLIENT_ID = ""
    OIDC_CLIENT_SECRET = ""  # empty: a public client (PKCE only)
    OIDC_SCOPES = "openid profile email"
    # The claim naming the local username; a person is matched by it, else by a verified e-mail.
    OIDC_USERNAME_CLAIM = "preferred_username"
    OIDC_BUTTON_LABEL = "统一身份认证登录"
    # Empty: <this site>/login/oidc/callback as the request reaches it (behind a proxy: see TRUSTED_PROXIES).
    OIDC_REDIRECT_URI = ""
    OIDC_TIMEOUT = 10  # seconds for each request to the provider
    # LDAP is on when LDAP_URL is set (ldap://host:389 or ldaps://host:636). Either LDAP_USER_DN, a
    # template such as "uid={username},ou=people,dc=example,dc=org", or a service account that searches
    # (LDAP_BIND_DN, LDAP_BIND_PASSWORD, LDAP_SEARCH_BASE, LDAP_SEARCH_FILTER with {username}).
    LDAP_URL = ""
    LDAP_START_TLS = False
    LDAP_CA_FILE = ""  # CA certificates for ldaps:// or StartTLS; empty: the system's
    LDAP_USER_DN = ""
    LDAP_BIND_DN = ""
    LDAP_BIND_PASSWORD = ""
    LDAP_SEARCH_BASE = ""
    LDAP_SEARCH_FILTER = "(uid={username})"
    LDAP_USERNAME_ATTRIBUTE = "uid"
    LDAP_MAIL_ATTRIBUTE = "mail"
    LDAP_TIMEOUT = 5  # seconds to connect and for each answer
    # Fonts named in DOCX (present on office PCs) and used for server-side PDF (open fonts).
    DOCX_FONTS = {
        "title": "方正小标宋简体",
        "body": "仿宋_GB2312",
        "heading1": "黑体",
        "heading2": "楷体_GB2312",
        "page_number": "宋体",
    }
    PDF_FONTS = {
        "title": "Noto Serif CJK SC",
        "body": "Noto Serif CJK SC",
        "heading1": "Noto Sans CJK SC",
        "heading2": "AR PL UKai CN, Noto Serif CJK SC",
        "page_number": "Noto Serif CJK SC",
    }


class DevelopmentConfig(Config):
    DEBUG = False
    SCHEDULER_IN_PROCESS = True


class TestingConfig(Config):
    TESTING = True
    SECRET_KEY = "testing-secret"
    WTF_CSRF_ENABLED = False


class ProductionConfig(Config):
    SCHEDULER_EXPECTED = True
    # TRUSTED_PROXIES stays 0: trusting X-Forwarded-For on a server reachable without the proxy lets
    # anybody choose their address. The nginx recipe sets FAZHI_TRUSTED_PROXIES=1.
    SESSION_COOKIE_SECURE = os.environ.get("FAZHI_SESSION_COOKIE_SECURE", "1") == "1"
    REMEMBER_COOKIE_SECURE = SESSION_COOKIE_SECURE
    # The __Host- prefix makes browsers refuse the cookie unless it is Secure, Path=/ and has no
    # Domain, so no sibling site or plain-HTTP page can plant one; it needs HTTPS.
    SESSION_COOKIE_PATH = "/"
    SESSION_COOKIE_NAME = "__Host-session" if SESSION_COOKIE_SECURE else "session"
    REMEMBER_COOKIE_NAME = "__Host-remember_token" if SESSION_COOKIE_SECURE else "remember_token"
    DEVICE_COOKIE_NAME = "__Host-fazhi_device" if SESSION_COOKIE_SECURE else "fazhi_device"


CONFIGS = {
    "development": DevelopmentConfig,
    "testing": TestingConfig,
    "production": ProductionConfig,
}
