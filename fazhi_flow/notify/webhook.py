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

Error texts are for the admin, in Chinese and without exception names or errno; the technical text
(exception, errno, the robot's own message) goes to the log with the robot's host.
"""
from __future__ import annotations

import base64
import errno
import hashlib
import hmac
import http.client
import json
import logging
import socket
import ssl
import time
import urllib.error
import urllib.parse
import urllib.request

from . import PermanentFailure, TemporaryFailure, Unreachable

logger = logging.getLogger(__name__)

# Robot error codes that mean "too many messages, try later".
RATE_LIMIT_CODES = {45009, 130101}

# What the robots' common error codes mean (WeCom and DingTalk), for the admin.
ROBOT_ERRORS = {
    45009: "发送过于频繁，超过了群机器人的限额",
    130101: "发送过于频繁，超过了群机器人的限额",
    93000: "地址中的机器人密钥无效，请检查群机器人地址",
    40008: "消息类型不受支持",
    44004: "消息内容为空",
    300001: "地址中的 access_token 无效或不存在，请检查群机器人地址",
    300005: "地址中的 access_token 无效或不存在，请检查群机器人地址",
    310000: "群机器人的安全设置拒绝了消息（关键词、加签密钥或 IP 地址不符），请检查机器人的安全设置",
}

# HTTP statuses a robot endpoint answers with, in words.
HTTP_STATUSES = {
    400: "请求格式不对",
    401: "未获授权，请检查地址中的密钥",
    403: "拒绝访问，请检查地址中的密钥和机器人的安全设置",
    404: "地址不存在，请检查群机器人地址",
    405: "不接受这种请求，请检查群机器人地址",
    413: "消息过长",
    429: "发送过于频繁",
    500: "对方服务器内部错误",
    502: "对方网关错误",
    503: "对方服务暂不可用",
    504: "对方网关超时",
}

# Connection failures by errno, in words (ECONNREFUSED has its own text below).
CONNECT_ERRNOS = {
    errno.ENETUNREACH: "网络不可达",
    errno.EHOSTUNREACH: "主机不可达",
    errno.ECONNRESET: "连接被对方重置",
    errno.ECONNABORTED: "连接被中止",
    errno.EADDRNOTAVAIL: "本机无法使用该地址",
}


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


def _technical(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


def _not_sent(reason, host: str, timeout: float) -> Unreachable:
    """A failure while connecting (urllib wraps it in URLError): nothing reached the robot."""
    logger.info("Robot %s not reached: %s", host, _technical(reason) if isinstance(reason, BaseException)
                   else reason)
    if _is_timeout(reason):
        return Unreachable(f"无法连接群机器人：{timeout:g} 秒内未能与 {host} 建立连接（消息未发出）。")
    if isinstance(reason, ConnectionRefusedError):
        return Unreachable(f"无法连接群机器人：{host} 拒绝连接（消息未发出）。")
    if isinstance(reason, socket.gaierror):
        return Unreachable(f"无法连接群机器人：找不到主机 {host}（消息未发出），请检查地址和域名解析。")
    if isinstance(reason, ssl.SSLCertVerificationError):
        return Unreachable(f"无法连接群机器人：{host} 的证书未通过校验（消息未发出），请检查地址和服务器证书。")
    if isinstance(reason, ssl.SSLError):
        return Unreachable(f"无法连接群机器人：与 {host} 建立加密连接失败（消息未发出）。")
    said = CONNECT_ERRNOS.get(getattr(reason, "errno", None), "连接失败")
    return Unreachable(f"无法连接群机器人：与 {host} {said}（消息未发出）。")


def _maybe_sent(exc: BaseException, host: str, timeout: float) -> NoAnswer:
    """A failure after the request went out: the robot may have received it."""
    logger.info("Robot %s gave no answer: %s", host, _technical(exc))
    if _is_timeout(exc):
        return NoAnswer(f"连接超时，对方可能已收到：消息已发出，{timeout:g} 秒内没有应答；重试时群里可能重复出现。")
    if isinstance(exc, http.client.RemoteDisconnected):
        how = "对方未应答就关闭了连接"
    elif getattr(exc, "errno", None) == errno.ECONNRESET:
        how = "连接被对方重置"
    elif isinstance(exc, http.client.HTTPException):
        how = "对方的应答格式不对"
    else:
        how = "未收到应答"
    return NoAnswer(f"连接中断，对方可能已收到：消息已发出，{how}；重试时群里可能重复出现。")


def _http_failure(code: int, reason, host: str) -> TemporaryFailure | PermanentFailure:
    logger.info("Robot %s answered HTTP %s %s", host, code, reason)
    said = HTTP_STATUSES.get(code) or ("对方服务器出错" if code >= 500 else "请求被拒绝")
    message = f"群机器人返回 HTTP {code}：{said}。"
    if code == 429 or code >= 500:
        return TemporaryFailure(message)
    return PermanentFailure(message)


def _robot_failure(code, answer: dict, host: str) -> TemporaryFailure | PermanentFailure:
    errmsg = str(answer.get("errmsg") or "")
    logger.info("Robot %s answered errcode %s: %s", host, code, errmsg)
    try:
        number = int(code)
    except (TypeError, ValueError):
        number = None
    said = ROBOT_ERRORS.get(number)
    if said is None:
        # An unknown code: the robot's own words (often Chinese already) help the admin most.
        said = f"对方说明：{errmsg[:200]}" if errmsg else "对方未说明原因"
    message = f"群机器人返回错误 {code}：{said}。"
    if number in RATE_LIMIT_CODES:
        return TemporaryFailure(message)
    return PermanentFailure(message)


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


# Longest text content a robot accepts, in UTF-8 bytes (WeCom: 2048; DingTalk: 20000).
TEXT_LIMITS = {"wecom": 2048, "dingtalk": 20000}
CUT_NOTE = "……（内容较长，完整内容请在系统中查看）"


def fit_text(text: str, limit: int) -> str:
    """``text`` within ``limit`` UTF-8 bytes: a longer one keeps its head and its last line (the
    link) with a note between, so that the robot accepts it instead of refusing the whole message."""
    if len(text.encode("utf-8")) <= limit:
        return text
    head, _, last = text.rpartition("\n")
    if not head or len(last.encode("utf-8")) > limit // 2:
        head, last = text, ""
    tail = f"{CUT_NOTE}\n{last}" if last else CUT_NOTE
    room = limit - len(tail.encode("utf-8"))
    return head.encode("utf-8")[:max(0, room)].decode("utf-8", "ignore") + tail


def payload(kind: str, text: str, mobiles: list[str] | None = None) -> dict:
    mobiles = [m for m in (mobiles or []) if m]
    text = fit_text(text, TEXT_LIMITS.get(kind, 2048))
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
        try:
            with exc:  # it holds the connection open
                said = exc.read(500).decode("utf-8", "replace")
        except (OSError, http.client.HTTPException):
            said = ""
        raise _http_failure(exc.code, f"{exc.reason} {said}".strip(), _host(url)) from None
    except http.client.InvalidURL as exc:
        logger.info("Robot address not valid: %s", _technical(exc))
        raise PermanentFailure("群机器人地址格式不对，请检查主机名和端口。") from None
    except urllib.error.URLError as exc:
        # urllib wraps only what fails while connecting and sending the request.
        raise _not_sent(exc.reason, _host(url), timeout) from None
    except (OSError, http.client.HTTPException) as exc:
        # Waiting for or reading the answer: the request had gone out.
        raise _maybe_sent(exc, _host(url), timeout) from None
    try:
        answer = json.loads(raw.decode("utf-8") or "{}")
    except (UnicodeDecodeError, json.JSONDecodeError):
        return  # a plain 2xx without JSON counts as accepted
    code = answer.get("errcode", 0) if isinstance(answer, dict) else 0
    if code in (0, None, "0"):
        return
    raise _robot_failure(code, answer, _host(url))
