"""OpenID Connect login: authorization code flow with PKCE (S256), through Authlib's Flask client.

The provider's endpoints and keys come from ``<OIDC_ISSUER>/.well-known/openid-configuration``.
Authlib keeps state, nonce and the PKCE verifier in the session between the redirect and the
callback and checks the state; the ID token is verified here with explicit options: signature by the
provider's JWKS, issuer, audience (our client id), expiry and nonce. Every failure of the provider
or of its answer becomes an ``SsoRefused`` with a Chinese message, never a server error.
"""
from __future__ import annotations

import logging

import requests
from authlib.integrations.base_client.errors import MismatchingStateError, OAuthError
from authlib.integrations.flask_client import OAuth
from flask import current_app, request, session, url_for

try:  # recent Authlib releases verify tokens with joserfc
    from joserfc.errors import JoseError
except ImportError:  # older ones with their own authlib.jose
    from authlib.jose.errors import JoseError

from .matching import Identity, SsoRefused

logger = logging.getLogger(__name__)

UNREACHABLE = "暂时无法连接统一身份认证服务，请稍后再试；如持续出现，请联系管理员。"
STATE_LOST = "登录请求已失效或不是从本系统发起的，请重新点击“{label}”。"
BAD_TOKEN = "统一身份认证返回的登录凭据未通过校验，未能登录。请重新登录；如反复出现，请联系管理员。"
DENIED = "统一身份认证未完成登录（您取消了登录，或统一身份认证平台拒绝了这次登录），请重新登录。"
LEEWAY_SECONDS = 60  # clock difference tolerated between this server and the provider
_NAME = "fazhi"


def issuer() -> str:
    return str(current_app.config.get("OIDC_ISSUER") or "").strip().rstrip("/")


def metadata_url() -> str:
    return issuer() + "/.well-known/openid-configuration"


def _settings_key(config) -> tuple:
    return tuple(str(config.get(k) or "") for k in (
        "OIDC_ISSUER", "OIDC_CLIENT_ID", "OIDC_CLIENT_SECRET", "OIDC_SCOPES", "OIDC_TIMEOUT"))


def client():
    """The registered Authlib client of this app, rebuilt when the OIDC settings change."""
    app = current_app._get_current_object()
    config = app.config
    key = _settings_key(config)
    cached = app.extensions.get("fazhi_oidc")
    if cached is not None and cached[0] == key:
        return cached[1]
    secret = str(config.get("OIDC_CLIENT_SECRET") or "")
    oauth = OAuth()
    oauth.init_app(app)
    remote = oauth.register(
        _NAME,
        client_id=str(config["OIDC_CLIENT_ID"]).strip(),
        client_secret=secret or None,
        server_metadata_url=metadata_url(),
        client_kwargs={
            "scope": str(config.get("OIDC_SCOPES") or "openid"),
            "code_challenge_method": "S256",
            "token_endpoint_auth_method": "client_secret_basic" if secret else "none",
            "default_timeout": int(config.get("OIDC_TIMEOUT") or 10),
        },
    )
    app.extensions["fazhi_oidc"] = (key, remote)
    return remote


def redirect_uri() -> str:
    return str(current_app.config.get("OIDC_REDIRECT_URI") or "").strip() or url_for(
        "auth.oidc_callback", _external=True)


def start():
    """The redirect to the provider's authorization page (state, nonce, PKCE kept in the session)."""
    remote = client()
    # Only the newest attempt counts: every abandoned one would otherwise stay in the session cookie
    # (state, nonce, verifier) until the cookie grew past what browsers keep.
    for key in [k for k in session if k.startswith(f"_state_{_NAME}_")]:
        session.pop(key)
    try:
        _load_metadata(remote)
        return remote.authorize_redirect(redirect_uri())
    except SsoRefused:
        raise
    except (requests.RequestException, ValueError, KeyError, RuntimeError) as exc:
        logger.warning("oidc provider unusable: %s", type(exc).__name__)
        raise SsoRefused(UNREACHABLE, "provider_unreachable") from None


def _load_metadata(remote) -> dict:
    metadata = remote.load_server_metadata()
    if str(metadata.get("issuer") or "").rstrip("/") != issuer():
        # OpenID Connect Discovery 1.0 §4.3: a document naming another issuer is not this provider's.
        logger.warning("oidc discovery names issuer %r, configured %r", metadata.get("issuer"), issuer())
        raise SsoRefused(UNREACHABLE, "issuer_mismatch")
    for field in ("authorization_endpoint", "token_endpoint", "jwks_uri"):
        if not metadata.get(field):
            raise SsoRefused(UNREACHABLE, "metadata_incomplete")
    return metadata


def finish(label: str) -> Identity:
    """Check the callback, exchange the code and verify the ID token; the identity it names."""
    error = request.args.get("error")
    if error:
        # Only an answer to this browser's own attempt is the provider's; anyone can craft a link with
        # error_description, so its words are logged, never shown (a fixed message is).
        state = request.args.get("state") or ""
        if not state or f"_state_{_NAME}_{state}" not in session:
            raise SsoRefused(STATE_LOST.format(label=label), "state_mismatch")
        for key in [k for k in session if k.startswith(f"_state_{_NAME}_")]:
            session.pop(key, None)
        logger.info("oidc provider answered %s: %s", str(error)[:60],
                    str(request.args.get("error_description") or "")[:200])
        raise SsoRefused(DENIED, "provider_error")
    remote = client()
    claims_options = {
        "iss": {"essential": True, "values": [issuer(), issuer() + "/"]},
        "aud": {"essential": True, "values": [remote.client_id]},
        "exp": {"essential": True},
        "sub": {"essential": True},
    }
    try:
        _load_metadata(remote)
        token = remote.authorize_access_token(claims_options=claims_options, leeway=LEEWAY_SECONDS)
    except MismatchingStateError:
        raise SsoRefused(STATE_LOST.format(label=label), "state_mismatch") from None
    except SsoRefused:
        raise
    except (JoseError, OAuthError) as exc:
        logger.warning("oidc token refused: %s %s", type(exc).__name__, str(exc)[:200])
        raise SsoRefused(BAD_TOKEN, "token_invalid") from None
    except (requests.RequestException, ValueError, KeyError, RuntimeError) as exc:
        logger.warning("oidc provider unusable: %s", type(exc).__name__)
        raise SsoRefused(UNREACHABLE, "provider_unreachable") from None
    claims = token.get("userinfo")
    if not claims:  # no ID token in the answer: nothing vouches for who this is
        raise SsoRefused(BAD_TOKEN, "no_id_token")
    return identity_from_claims(claims, str(current_app.config.get("OIDC_USERNAME_CLAIM") or "preferred_username"))


def identity_from_claims(claims, username_claim: str) -> Identity:
    username = claims.get(username_claim)
    verified = claims.get("email_verified")
    return Identity(
        method="oidc",
        subject=str(claims.get("sub") or ""),
        username=username if isinstance(username, str) else None,
        email=claims.get("email") if isinstance(claims.get("email"), str) else None,
        # Some providers send the flag as a string.
        email_verified=verified is True or (isinstance(verified, str) and verified.lower() == "true"),
    )
