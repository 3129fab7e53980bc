"""Post a text message to a WeCom (企业微信) or DingTalk (钉钉) group robot.

Both robots accept ``{"msgtype": "text", "text": {"content": ...}}``. When the target has a secret,
the request is signed the DingTalk way: query parameters ``timestamp`` (milliseconds) and ``sign`` =
urlencode(base64(HMAC-SHA256(key=secret, msg=f"{timestamp}\\n{secret}"))). A receiver checks it by
recomputing the same value (see ``verify_signature``).
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import socket
import time
import urllib.error
import urllib.parse
import urllib.request

from . import PermanentFailure, TemporaryFailure

# Robot error codes that mean "too many messages, try later".
RATE_LIMIT_CODES = {45009, 130101}


def sign(secret: str, timestamp_ms: int) -> str:
    string_to_sign = f"{timestamp_ms}\n{secret}".encode()
    digest = hmac.new(secret.encode(), string_to_sign, hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def verify_signature(secret: str, timestamp: str, signature: str, max_age_ms: int = 3_600_000,
                     now_ms: int | None = None) -> bool:
    """Check a DingTalk-style signature (``signature`` already URL-decoded)."""
    try:
        ts = int(timestamp)
    except (TypeError, ValueError):
        return False
    now_ms = int(time.time() * 1000) if now_ms is None else now_ms
    if abs(now_ms - ts) > max_age_ms:
        return False
    return hmac.compare_digest(sign(secret, ts), signature or "")


def signed_url(url: str, secret: str | None, timestamp_ms: int | None = None) -> str:
    if not secret:
        return url
    ts = int(time.time() * 1000) if timestamp_ms is None else timestamp_ms
    query = urllib.parse.urlencode({"timestamp": ts, "sign": sign(secret, ts)})
    return f"{url}{'&' if '?' in url else '?'}{query}"


def payload(kind: str, text: str, mobiles: list[str] | None = None) -> dict:
    mobiles = [m for m in (mobiles or []) if m]
    if kind == "dingtalk":
        body = {"msgtype": "text", "text": {"content": text}}
        if mobiles:
            body["at"] = {"atMobiles": mobiles, "isAtAll": False}
        return body
    body = {"msgtype": "text", "text": {"content": text}}
    if mobiles:
        body["text"]["mentioned_mobile_list"] = mobiles
    return body


def post(url: str, secret: str | None, body: dict, timeout: float = 10) -> None:
    """POST ``body`` as JSON.

    :raise TemporaryFailure: no connection, timeout, HTTP 429 or 5xx, a robot rate limit.
    :raise PermanentFailure: other HTTP 4xx, or the robot answered with an error code.
    """
    if not url.lower().startswith(("http://", "https://")):
        raise PermanentFailure("群机器人地址必须以 http:// 或 https:// 开头。")
    data = json.dumps(body, ensure_ascii=False).encode("utf-8")
    request = urllib.request.Request(
        signed_url(url, secret), data=data, method="POST",
        headers={"Content-Type": "application/json; charset=utf-8"},
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 - URL checked above
            raw = response.read(65536)
    except urllib.error.HTTPError as exc:
        message = f"HTTP {exc.code} {exc.reason}"
        if exc.code == 429 or exc.code >= 500:
            raise TemporaryFailure(message) from None
        raise PermanentFailure(message) from None
    except (urllib.error.URLError, socket.timeout, TimeoutError, ConnectionError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise TemporaryFailure(f"无法连接群机器人：{reason}") from None
    try:
        answer = json.loads(raw.decode("utf-8") or "{}")
    except (UnicodeDecodeError, json.JSONDecodeError):
        return  # a plain 2xx without JSON counts as accepted
    code = answer.get("errcode", 0) if isinstance(answer, dict) else 0
    if code in (0, None, "0"):
        return
    message = f"群机器人返回错误 {code}：{answer.get('errmsg', '')}"
    if code in RATE_LIMIT_CODES:
        raise TemporaryFailure(message)
    raise PermanentFailure(message)
