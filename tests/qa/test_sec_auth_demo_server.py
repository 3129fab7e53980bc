"""The demo's web server does not announce its Werkzeug and Python versions."""
import threading
import urllib.request

from flask import Flask

from fazhi_flow.cli import demo_server


def test_the_demo_server_header_names_no_versions():
    tiny = Flask(__name__)
    tiny.add_url_rule("/", "index", lambda: "ok")
    server = demo_server("127.0.0.1", 0, tiny)  # the server `fazhi-flow demo` runs
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{server.server_port}/", timeout=10) as response:
            header = response.headers["Server"]
            assert response.read() == b"ok"
    finally:
        server.shutdown()
        thread.join(10)
    assert header == "fazhi-flow"
