"""An ASGI app (e.g. `cowest serve`'s) on a real uvicorn server in a background thread, on a free loopback port."""

from __future__ import annotations

import json
import socket
import threading
import time
import urllib.error
import urllib.request
from typing import Any


def post(url: str, data: bytes, headers: dict[str, str], timeout: float = 20) -> tuple[int, dict, dict]:
    """A POST with exactly these headers (urllib adds Host unless given): status, JSON body and response headers."""
    req = urllib.request.Request(url, data=data, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, json.loads(r.read()), dict(r.headers)
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read()), dict(e.headers)


class ThreadedServer:
    """Serves `app` on 127.0.0.1 until `close()`; `url` is its base URL (no trailing /v1)."""

    def __init__(self, app: Any, start_timeout_s: float = 10.0) -> None:
        import uvicorn

        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [sock]}, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + start_timeout_s
        while not self.server.started and time.monotonic() < deadline:
            time.sleep(0.01)
        if not self.server.started:
            raise RuntimeError(f"uvicorn did not start within {start_timeout_s:g} s")

    def close(self) -> None:
        """Ask the server to finish and wait for its thread."""
        self.server.should_exit = True
        self.thread.join(30)
