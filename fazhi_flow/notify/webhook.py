"""Post a text message to a WeCom (企业微信) or DingTalk (钉钉) group robot.

Both robots accept ``{"msgtype": "text", "text": {"content": ...}}``. When the target has a secret,
the request is signed the DingTalk way: query parameters ``timestamp`` (milliseconds) and ``sign`` =
urlencode(base64(HMAC-SHA256(key=secret, msg=f"{timestamp}\\n{secret}"))). A receiver checks it by
recomputing the same value (see ``verify_signature``).

Robots are at-least-once: a robot has no way to recognise a message it has already shown, so when
the request went out and no answer came (a timeout or a dropped connection after sending), the
message may be in the group already, and a retry may show it twice. Such failures say so
("对方可能已收到"); failures before anything was sent (refused, unknown host, no connection within
the timeout) say "无法连接".
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import http.client
import json
import socket
import time
import urllib.error
import urllib.parse
import urllib.request

from . import PermanentFailure, TemporaryFailure, Unreachable

# Robot error codes that mean "too many messages, try later".
RATE_LIMIT_CODES = {45009, 130101}


class NoAnswer(Unreachable):
    """The request was sent but no answer came: the robot may have shown the message already."""

    maybe_delivered = True


def _is_timeout(exc: BaseException) -> bool:
    return isinstance(exc, (socket.timeout, TimeoutError))


def _host(url: str) -> str:
    """Host and port of ``url``, without anything that may be a credential."""
    parts = urllib.parse.urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        port = None
    return f"{parts.hostname or ''}{f':{port}' if port else ''}"


def _not_sent(reason, host: str, timeout: float) -> Unreachable:
    """A failure while connecting (urllib wraps it in URLError): nothing reached the robot."""
    if _is_timeout(reason):
        return Unreachable(f"无法连接群机器人：{timeout:g} 秒内未能与 {host} 建立连接（消息未发出）。")
    if isinstance(reason, ConnectionRefusedError):
        return Unreachable(f"无法连接群机器人：{host} 拒绝连接（消息未发出）。")
    if isinstance(reason, socket.gaierror):
        return Unreachable(f"无法连接群机器人：找不到主机 {host}（消息未发出），请检查地址和域名解析。")
    return Unreachable(f"无法连接群机器人：{reason}（消息未发出）。")


def _maybe_sent(exc: BaseException, timeout: float) -> NoAnswer:
    """A failure after the request went out: the robot may have received it."""
    if _is_timeout(exc):
        return NoAnswer(f"连接超时，对方可能已收到：消息已发出，{timeout:g} 秒内没有应答；重试时群里可能重复出现。")
    return NoAnswer(f"连接中断，对方可能已收到：消息已发出，未收到应答（{type(exc).__name__}）；"
                    "重试时群里可能重复出现。")


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

    :raise Unreachable: no connection (refused, unknown host, connecting timed out): not sent.
    :raise NoAnswer: sent, but no answer in time or the connection dropped: perhaps received.
    :raise TemporaryFailure: HTTP 429 or 5xx, a robot rate limit.
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
    except http.client.InvalidURL as exc:
        raise PermanentFailure(f"群机器人地址格式不对：{exc}") from None
    except urllib.error.URLError as exc:
        # urllib wraps only what fails while connecting and sending the request.
        raise _not_sent(exc.reason, _host(url), timeout) from None
    except (OSError, http.client.HTTPException) as exc:
        # Waiting for or reading the answer: the request had gone out.
        raise _maybe_sent(exc, timeout) from None
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
