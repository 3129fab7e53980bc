"""LDAP login: the password typed on the login form is checked by binding to the directory as the person.

Either the person's DN is built from a template (``LDAP_USER_DN``, the username escaped as an RDN
value), or a service account searches for it (``LDAP_SEARCH_FILTER``, the username escaped with
``escape_filter_chars``, never pasted in raw). An empty password is refused before anything is sent:
a simple bind with a DN and no password is an anonymous bind that servers accept (RFC 4513 §5.1.2),
so it would otherwise count as success. Connections time out (``LDAP_TIMEOUT``); ``ldaps://`` or
StartTLS verify the server's certificate.
"""
from __future__ import annotations

import logging
import ssl
import warnings

from flask import current_app

with warnings.catch_warnings():
    # ldap3 2.9 imports pyasn1's old names (tagMap, typeMap), deprecated since pyasn1 0.6.1; the
    # warning is about ldap3's code, not ours, and would only fill the log.
    warnings.filterwarnings("ignore", r"\w+ is deprecated\. Please use \w+ instead\.", DeprecationWarning)
    from ldap3 import BASE, NONE, SIMPLE, SUBTREE, Connection, Server, Tls
    from ldap3.core.exceptions import LDAPException
    from ldap3.utils.conv import escape_filter_chars
    from ldap3.utils.dn import escape_rdn

from .matching import Identity

logger = logging.getLogger(__name__)


class LdapUnavailable(Exception):
    """The directory could not be asked (down, timeout, TLS failure, service account refused)."""


def _config(name: str) -> str:
    return str(current_app.config.get(name) or "").strip()


def directory_server(config=None) -> Server:
    config = current_app.config if config is None else config
    url = str(config.get("LDAP_URL") or "").strip()
    timeout = int(config.get("LDAP_TIMEOUT") or 5)
    tls = None
    if url.lower().startswith("ldaps://") or config.get("LDAP_START_TLS"):
        tls = Tls(validate=ssl.CERT_REQUIRED, ca_certs_file=str(config.get("LDAP_CA_FILE") or "").strip() or None,
                  version=ssl.PROTOCOL_TLS_CLIENT)
    return Server(url, get_info=NONE, tls=tls, connect_timeout=timeout)


def connect(server: Server, dn: str, password: str, config=None) -> Connection:
    """An open connection (StartTLS done when configured), not yet bound."""
    config = current_app.config if config is None else config
    conn = Connection(server, user=dn, password=password, authentication=SIMPLE, auto_bind=False,
                      read_only=True, raise_exceptions=False, receive_timeout=int(config.get("LDAP_TIMEOUT") or 5))
    try:
        conn.open()
        if config.get("LDAP_START_TLS") and not conn.start_tls():
            raise LdapUnavailable("starttls refused")
    except (LDAPException, LdapUnavailable):
        # ldap3 leaves the socket of a refused connection or handshake open; closed here, not by
        # the garbage collector.
        if getattr(conn, "socket", None) is not None:
            conn.socket.close()
        raise
    return conn


def _attributes() -> list[str]:
    return [_config("LDAP_USERNAME_ATTRIBUTE") or "uid", _config("LDAP_MAIL_ATTRIBUTE") or "mail", "entryUUID"]


def _first(entry: dict, name: str) -> str | None:
    for key, value in entry.items():
        if key.lower() == name.lower():
            value = value[0] if isinstance(value, list) and value else value
            return str(value) if value not in (None, [], "") else None
    return None


def _find_dn(server: Server, username: str) -> str | None:
    """With a service account: the DN of the one entry the filter finds (none or several: None)."""
    conn = connect(server, _config("LDAP_BIND_DN"), str(current_app.config.get("LDAP_BIND_PASSWORD") or ""))
    try:
        if not conn.bind():
            logger.warning("ldap service bind refused: %s", conn.result.get("description"))
            raise LdapUnavailable("service bind refused")
        search = _config("LDAP_SEARCH_FILTER") or "(uid={username})"
        conn.search(_config("LDAP_SEARCH_BASE"), search.replace("{username}", escape_filter_chars(username)),
                    search_scope=SUBTREE, attributes=["1.1"], size_limit=2)
        entries = [e for e in conn.response or [] if e.get("type") == "searchResEntry"]
        return entries[0]["dn"] if len(entries) == 1 else None
    finally:
        conn.unbind()


def authenticate(username: str, password: str) -> Identity | None:
    """The directory's identity when ``password`` is the person's, else None; LdapUnavailable
    when the directory cannot answer."""
    username = (username or "").strip()
    if not username or not password:
        return None
    server = directory_server()
    try:
        template = _config("LDAP_USER_DN")
        dn = template.replace("{username}", escape_rdn(username)) if template else _find_dn(server, username)
        if dn is None:
            return None
        conn = connect(server, dn, password)
        try:
            if not conn.bind():
                return None
            conn.search(dn, "(objectClass=*)", search_scope=BASE, attributes=_attributes())
            entries = [e for e in conn.response or [] if e.get("type") == "searchResEntry"]
            entry = dict(entries[0].get("attributes") or {}) if entries else {}
        finally:
            conn.unbind()
    except LDAPException as exc:
        logger.warning("ldap unavailable: %s", type(exc).__name__)
        raise LdapUnavailable(type(exc).__name__) from None
    uuid = _first(entry, "entryUUID")
    return Identity(
        method="ldap",
        subject=f"ldap:{uuid}" if uuid else f"ldap:{dn.lower()}",
        username=_first(entry, _config("LDAP_USERNAME_ATTRIBUTE") or "uid") or username,
        email=_first(entry, _config("LDAP_MAIL_ATTRIBUTE") or "mail"),
        # The directory is the organisation's own record of its people, not a self-declared address.
        email_verified=True,
    )
