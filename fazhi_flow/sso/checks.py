"""``fazhi-flow check``'s single sign-on items: is each configured method complete and reachable?

Each function adds lines to the command's report (``add(level, name, text)``); the levels are the
command's own strings, passed in so that this module does not import the command's.
"""
from __future__ import annotations

import importlib.util
import urllib.parse

from . import ldap_enabled, oidc_enabled

OIDC_NAME, LDAP_NAME = "统一身份认证（OIDC）", "统一身份认证（LDAP）"
_EXTRA = "pip install 'fazhi-flow[sso]'"


def check_oidc(add, levels, config, env_name: str, timeout: int) -> None:
    ok, warning, error = levels
    if not oidc_enabled(config):
        partly = [k for k in ("OIDC_ISSUER", "OIDC_CLIENT_ID") if str(config.get(k) or "").strip()]
        if partly:
            missing = "FAZHI_OIDC_CLIENT_ID" if partly == ["OIDC_ISSUER"] else "FAZHI_OIDC_ISSUER"
            add(error, OIDC_NAME, f"只设置了一部分：还需设置 {missing}，否则登录页不显示统一身份认证按钮。")
        else:
            add(ok, OIDC_NAME, "未配置（登录页不显示统一身份认证按钮）。")
        return
    if importlib.util.find_spec("authlib") is None or importlib.util.find_spec("requests") is None:
        add(error, OIDC_NAME, f"已配置，但未安装所需组件：{_EXTRA}。")
        return
    issuer = str(config["OIDC_ISSUER"]).strip().rstrip("/")
    problem = _oidc_metadata_problem(issuer, timeout)
    if problem:
        add(error, OIDC_NAME, problem)
    elif env_name == "production" and urllib.parse.urlsplit(issuer).scheme != "https":
        add(warning, OIDC_NAME, f"{issuer} 不是 https：登录凭据会明文传输，请改用 https:// 地址。")
    else:
        add(ok, OIDC_NAME, f"可以读取 {issuer} 的配置（授权码 + PKCE S256）。")


def _oidc_metadata_problem(issuer: str, timeout: int) -> str | None:
    import requests

    url = issuer + "/.well-known/openid-configuration"
    try:
        response = requests.get(url, timeout=timeout)
        response.raise_for_status()
        metadata = response.json()
    except (requests.RequestException, ValueError) as exc:
        return (f"无法读取 {url}（{type(exc).__name__}）：检查 FAZHI_OIDC_ISSUER、网络和防火墙；"
                "该地址应是统一身份认证服务的发行者地址（issuer）。")
    if not isinstance(metadata, dict):
        return f"{url} 的内容不是 OpenID Connect 配置：检查 FAZHI_OIDC_ISSUER。"
    if str(metadata.get("issuer") or "").rstrip("/") != issuer:
        return (f"配置中的发行者是 {str(metadata.get('issuer'))[:80]!r}，与 FAZHI_OIDC_ISSUER={issuer!r} 不一致："
                "请把 FAZHI_OIDC_ISSUER 设为前者。")
    lacking = [k for k in ("authorization_endpoint", "token_endpoint", "jwks_uri") if not metadata.get(k)]
    if lacking:
        return f"配置缺少 {'、'.join(lacking)}：该服务不支持授权码方式登录。"
    methods = metadata.get("code_challenge_methods_supported")
    if isinstance(methods, list) and "S256" not in methods:
        return "该服务不支持 PKCE（S256），本系统要求使用：请在统一身份认证服务中启用。"
    return None


def check_ldap(add, levels, config, env_name: str, timeout: int) -> None:
    ok, warning, error = levels
    if not ldap_enabled(config):
        add(ok, LDAP_NAME, "未配置（登录表单只核对本系统的密码）。")
        return
    if importlib.util.find_spec("ldap3") is None:
        add(error, LDAP_NAME, f"已配置，但未安装所需组件：{_EXTRA}。")
        return
    url = str(config["LDAP_URL"]).strip()
    problem = _ldap_settings_problem(config, url)
    if problem:
        add(error, LDAP_NAME, problem)
        return
    problem = _ldap_probe_problem(config, url, timeout)
    if problem:
        add(error, LDAP_NAME, problem)
    elif env_name == "production" and url.lower().startswith("ldap://") and not config.get("LDAP_START_TLS"):
        add(warning, LDAP_NAME, f"{url} 未加密：用户的密码会明文传输，请用 ldaps:// 或设 FAZHI_LDAP_START_TLS=1。")
    else:
        add(ok, LDAP_NAME, f"可以连接 {url}{'（StartTLS）' if config.get('LDAP_START_TLS') else ''}。")


def _ldap_settings_problem(config, url: str) -> str | None:
    if not url.lower().startswith(("ldap://", "ldaps://")):
        return f"FAZHI_LDAP_URL={url[:60]!r} 应以 ldap:// 或 ldaps:// 开头。"
    template = str(config.get("LDAP_USER_DN") or "").strip()
    if template:
        return None if "{username}" in template else "FAZHI_LDAP_USER_DN 中须含 {username}，如 uid={username},ou=people,dc=example,dc=org。"
    needed = [f"FAZHI_{k}" for k in ("LDAP_BIND_DN", "LDAP_SEARCH_BASE") if not str(config.get(k) or "").strip()]
    if needed:
        return f"须设置 FAZHI_LDAP_USER_DN，或设置服务账号查找用户：缺少 {'、'.join(needed)}。"
    if "{username}" not in str(config.get("LDAP_SEARCH_FILTER") or ""):
        return "FAZHI_LDAP_SEARCH_FILTER 中须含 {username}，如 (uid={username})。"
    return None


def _ldap_probe_problem(config, url: str, timeout: int) -> str | None:
    """Connect (and StartTLS); with a service account, bind as it."""
    # Through .ldap, which imports ldap3 with its deprecation warning silenced.
    from .ldap import LDAPException, LdapUnavailable, connect, directory_server

    try:
        conn = connect(directory_server(config), str(config.get("LDAP_BIND_DN") or ""),
                        str(config.get("LDAP_BIND_PASSWORD") or ""), config)
    except (LDAPException, LdapUnavailable) as exc:
        return f"无法连接 {url}（{type(exc).__name__}）：检查地址、端口、防火墙和证书（FAZHI_LDAP_CA_FILE）。"
    try:
        if str(config.get("LDAP_USER_DN") or "").strip():
            return None
        if not conn.bind():
            return "服务账号登录被拒绝：检查 FAZHI_LDAP_BIND_DN 和 FAZHI_LDAP_BIND_PASSWORD。"
        return None
    except LDAPException as exc:
        return f"无法连接 {url}（{type(exc).__name__}）：检查地址、端口和防火墙。"
    finally:
        conn.unbind()
