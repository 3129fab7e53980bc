"""Real servers for the reminder tests: an aiosmtpd SMTP server and a local HTTP webhook receiver."""
from __future__ import annotations

import email
import json
import socket
import threading
import urllib.parse
from email import policy as email_policy
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from aiosmtpd.controller import Controller


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RecordingHandler:
    """Accepts mail and records it; ``data_replies``/``rcpt_replies`` queue scripted answers first."""

    def __init__(self):
        self.messages: list = []
        self.data_replies: list[str] = []
        self.rcpt_replies: list[str] = []
        self.always: str | None = None  # e.g. "451 ..." for every DATA while set
        self.lock = threading.Lock()

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        with self.lock:
            if self.rcpt_replies:
                return self.rcpt_replies.pop(0)
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        with self.lock:
            if self.always:
                return self.always
            if self.data_replies:
                return self.data_replies.pop(0)
            msg = email.message_from_bytes(envelope.content, policy=email_policy.default)
            self.messages.append(msg)
        return "250 Message accepted for delivery"


class SmtpServer:
    def __init__(self, port: int, **kwargs):
        self.port = port
        self.handler = RecordingHandler()
        self.kwargs = kwargs
        self.controller: Controller | None = None

    def start(self):
        self.controller = Controller(self.handler, hostname="127.0.0.1", port=self.port, **self.kwargs)
        self.controller.start()

    def stop(self):
        if self.controller is not None:
            self.controller.stop()
            self.controller = None

    @property
    def messages(self):
        return self.handler.messages


@pytest.fixture()
def smtp(app):
    """A running SMTP server on a free port; app.config points at it for the test."""
    server = SmtpServer(free_port())
    server.start()
    saved = {k: app.config.get(k) for k in ("MAIL_HOST", "MAIL_PORT", "MAIL_SECURITY", "MAIL_USERNAME",
                                            "MAIL_TIMEOUT")}
    app.config.update(MAIL_HOST="127.0.0.1", MAIL_PORT=server.port, MAIL_SECURITY="none",
                      MAIL_USERNAME="", MAIL_TIMEOUT=5)
    yield server
    server.stop()
    app.config.update(saved)


class WebhookReceiver:
    """A local HTTP server recording JSON POSTs; ``statuses`` queues scripted HTTP answers."""

    def __init__(self):
        self.requests: list[dict] = []
        self.statuses: list[tuple[int, dict]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server API
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                parsed = urllib.parse.urlsplit(self.path)
                query = dict(urllib.parse.parse_qsl(parsed.query))
                status, answer = (receiver.statuses.pop(0) if receiver.statuses
                                  else (200, {"errcode": 0, "errmsg": "ok"}))
                if status == 200:
                    receiver.requests.append({"path": parsed.path, "query": query,
                                              "json": json.loads(raw.decode("utf-8")),
                                              "content_type": self.headers.get("Content-Type")})
                data = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def url(self, path="/robot/send?access_token=abc"):
        return f"http://127.0.0.1:{self.port}{path}"


@pytest.fixture()
def webhook_receiver():
    receiver = WebhookReceiver()
    receiver.thread.start()
    yield receiver
    receiver.server.shutdown()
    receiver.server.server_close()
