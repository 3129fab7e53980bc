"""Send one e-mail over SMTP with smtplib: plain, STARTTLS or SSL, with an optional login.

Settings (app.config, or ``FAZHI_MAIL_*`` environment variables): MAIL_HOST, MAIL_PORT,
MAIL_SECURITY (none | starttls | ssl), MAIL_USERNAME, MAIL_PASSWORD, MAIL_SENDER, MAIL_SENDER_NAME,
MAIL_TIMEOUT (seconds), MAIL_CA_FILE (a CA bundle for a private server certificate).

An outbox message keeps one Message-ID however often it is sent (``outbox_message_id``): when a
message is sent again because its first sending was never recorded (the process or the database
died after the server accepted it), mail clients see the same Message-ID and show it once.
"""
from __future__ import annotations

import hashlib
import logging
import smtplib
import socket
import ssl
from datetime import datetime
from email.message import EmailMessage
from email.utils import formataddr, formatdate, make_msgid
from urllib.parse import urlsplit

from . import PermanentFailure, TemporaryFailure, Unreachable

logger = logging.getLogger(__name__)

DEFAULT_SENDER_NAME = "法治政府建设报告编报系统"


def _sender_domain(sender: str) -> str:
    return sender.rpartition("@")[2] or "localhost"


def outbox_message_id(config, outbox_id: int, created_at: datetime) -> str:
    """The Message-ID of outbox message ``outbox_id``: the same at every sending of that row.

    It is an opaque digest only: recipients see a Message-ID, and the row id or creation time in
    it would tell them how many messages the site sends and when this one was written. The row id
    alone is not enough as a seed: a database restored from an older backup, or a fresh one,
    numbers its messages again from where it stands, and a mail client would drop a new message
    that reused an old Message-ID as a duplicate. So the row's creation time (kept to the
    microsecond, the same at every retry) and the site's host (BASE_URL: a test installation
    sending as the same sender differs) go into the digest beside it. SECRET_KEY is left out on
    purpose: a digest of it in every e-mail would let a recipient test guesses of it offline.
    """
    host = (urlsplit(str(config.get("BASE_URL") or "")).hostname or "").lower()
    seed = f"fazhi-outbox\n{host}\n{outbox_id}\n{created_at.isoformat()}"
    # 128 bits: collisions between rows are out of reach, and the length stays readable.
    digest = hashlib.sha256(seed.encode("utf-8")).hexdigest()[:32]
    domain = _sender_domain(config.get("MAIL_SENDER") or "fazhi-flow@localhost")
    return f"<{digest}@{domain}>"


def build_message(config, to_addr: str, to_name: str | None, subject: str, body: str,
                  headers: dict | None = None, *, outbox_id: int | None = None,
                  created_at: datetime | None = None) -> EmailMessage:
    """The e-mail; with ``outbox_id`` and ``created_at`` (the outbox row's) its Message-ID is the
    row's stable one, otherwise a new random one (test mails)."""
    msg = EmailMessage()
    sender = config.get("MAIL_SENDER") or "fazhi-flow@localhost"
    msg["From"] = formataddr((config.get("MAIL_SENDER_NAME") or DEFAULT_SENDER_NAME, sender))
    msg["To"] = formataddr((to_name or "", to_addr)) if to_name else to_addr
    msg["Subject"] = subject
    msg["Date"] = formatdate(localtime=False)
    if outbox_id is not None and created_at is not None:
        msg["Message-ID"] = outbox_message_id(config, outbox_id, created_at)
    else:
        msg["Message-ID"] = make_msgid(domain=_sender_domain(sender))
    for name, value in (headers or {}).items():
        msg[name] = value
    msg.set_content(body, charset="utf-8", cte="base64")
    return msg


class _ClosedBeforeData(Exception):
    """A connection kept from an earlier message was closed before DATA: nothing was sent."""

    def __init__(self, detail: str):
        super().__init__(detail)
        self.detail = detail


def _classify_code(code: int, text) -> Exception:
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    message = f"SMTP {code} {text}".strip()
    if 400 <= code < 500:
        return TemporaryFailure(message)
    return PermanentFailure(message)


class _DataTracking:
    """Remembers whether DATA was begun on this connection for the current message: only a failure
    after that may have left the message with the server."""

    data_started = False

    def data(self, msg):
        self.data_started = True
        return super().data(msg)


class _SMTP(_DataTracking, smtplib.SMTP):
    pass


class _SMTPSSL(_DataTracking, smtplib.SMTP_SSL):
    pass


def _reason(exc: BaseException) -> str:
    """A connection failure in Chinese for the admin (the exception itself goes to the log)."""
    from .health import reason_text

    if isinstance(exc, smtplib.SMTPServerDisconnected):
        return "连接被服务器关闭"
    if isinstance(exc, smtplib.SMTPException) and not isinstance(exc, OSError):
        return "邮件服务器的应答不符合协议"
    return reason_text(exc)


class SmtpSender:
    """One SMTP connection reused for a batch of messages; reconnects after a failure.

    A server may close a connection kept open between messages (an idle timeout, or 421 after so
    many messages). When that happens before DATA the message is sent once more on a fresh
    connection before the mail server counts as down: nothing of it reached the server.
    """

    def __init__(self, config):
        self.config = config
        self._smtp: smtplib.SMTP | None = None

    def _connect(self) -> smtplib.SMTP:
        cfg = self.config
        host, port = cfg.get("MAIL_HOST") or "localhost", int(cfg.get("MAIL_PORT") or 25)
        timeout = float(cfg.get("MAIL_TIMEOUT") or 10)
        security = (cfg.get("MAIL_SECURITY") or "none").lower()
        context = ssl.create_default_context(cafile=cfg.get("MAIL_CA_FILE") or None)
        if security == "ssl":
            smtp = _SMTPSSL(host, port, timeout=timeout, context=context)
        else:
            smtp = _SMTP(host, port, timeout=timeout)
            if security == "starttls":
                smtp.starttls(context=context)
        if cfg.get("MAIL_USERNAME"):
            smtp.login(cfg["MAIL_USERNAME"], cfg.get("MAIL_PASSWORD") or "")
        return smtp

    def check(self) -> None:
        """Probe the mail server without a message: connect (with TLS and login as configured), NOOP,
        QUIT. Raises as ``send`` does."""
        self.close()
        try:
            self._smtp = self._connect()
            code, text = self._smtp.noop()
            if code != 250:
                raise smtplib.SMTPResponseException(code, text)
        except smtplib.SMTPResponseException as exc:
            self.close()
            raise _classify_code(exc.smtp_code, exc.smtp_error) from None
        except (smtplib.SMTPException, OSError) as exc:
            self.close()
            logger.info("Mail server probe failed: %s: %s", type(exc).__name__, exc)
            raise Unreachable(f"无法连接邮件服务器：{_reason(exc)}。") from None
        self.close()

    def send(self, msg: EmailMessage) -> None:
        """Send ``msg``.

        :raise Unreachable: refused connections, timeouts, dropped connections (a temporary failure).
        :raise TemporaryFailure: 4xx replies.
        :raise PermanentFailure: 5xx replies and configuration errors.
        """
        if self._smtp is not None:
            try:
                self._send(msg, reused=True)
                return
            except _ClosedBeforeData as exc:
                # The server closed the connection we kept: one more go on a fresh one.
                logger.info("Mail connection closed by the server before DATA (%s); sending again on a new one",
                            exc.detail)
        try:
            self._send(msg, reused=False)
        except _ClosedBeforeData:  # not raised for a fresh connection; kept for safety
            raise Unreachable("无法连接邮件服务器：连接被服务器关闭。") from None

    def _send(self, msg: EmailMessage, reused: bool) -> None:
        try:
            if self._smtp is None:
                self._smtp = self._connect()
            self._smtp.data_started = False
            refused = self._smtp.send_message(msg)
        except smtplib.SMTPRecipientsRefused as exc:
            self._reset_after_refusal()
            codes = [code for code, _ in exc.recipients.values()]
            detail = "; ".join(f"{addr}: {code} {text!r}" for addr, (code, text) in exc.recipients.items())
            if any(400 <= c < 500 for c in codes):
                raise TemporaryFailure(f"收件人暂时被拒绝：{detail}") from None
            raise PermanentFailure(f"收件人被拒绝：{detail}") from None
        except smtplib.SMTPResponseException as exc:
            started = self._data_started()
            self.close()
            if reused and not started and exc.smtp_code == 421:
                raise _ClosedBeforeData("SMTP 421") from None
            raise _classify_code(exc.smtp_code, exc.smtp_error) from None
        except smtplib.SMTPNotSupportedError as exc:
            self.close()
            raise PermanentFailure(f"邮件服务器不支持所需功能：{exc}") from None
        except (smtplib.SMTPServerDisconnected, smtplib.SMTPException, OSError, socket.timeout) as exc:
            connected = self._smtp is not None
            started = self._data_started()
            self.close()
            logger.info("Mail delivery failed (%s): %s: %s",
                        "after DATA" if started else "connected" if connected else "connecting",
                        type(exc).__name__, exc)
            if started:
                # The message may have been accepted before the answer was lost: it is sent again
                # later with the same Message-ID, which mail clients show once.
                raise Unreachable(f"邮件服务器无应答或连接中断，邮件可能已送达（重发时邮件编号不变）：{_reason(exc)}。") \
                    from None
            if reused:
                raise _ClosedBeforeData(f"{type(exc).__name__}: {exc}") from None
            raise Unreachable(f"无法连接邮件服务器：{_reason(exc)}。") from None
        if refused:
            detail = "; ".join(f"{addr}: {code}" for addr, (code, _t) in refused.items())
            raise PermanentFailure(f"部分收件人被拒绝：{detail}")

    def _data_started(self) -> bool:
        return bool(getattr(self._smtp, "data_started", False))

    def _reset_after_refusal(self) -> None:
        # The session is still usable after a refused RCPT, but RSET keeps the next message clean.
        try:
            if self._smtp is not None:
                self._smtp.rset()
        except (smtplib.SMTPException, OSError):
            self.close()

    def close(self) -> None:
        smtp, self._smtp = self._smtp, None
        if smtp is None:
            return
        try:
            smtp.quit()
        except (smtplib.SMTPException, OSError):
            try:
                smtp.close()
            except OSError:
                pass
