"""A loopback HTTP proxy that forwards to one upstream server and records every request.

Used to prove that a command sends *every* API request to the base URL it was given:
start ``LoopbackProxy(upstream)``, give the command ``proxy.base_url`` as its base URL, and
run it with ``proxy.env()`` in its environment. That environment also names the proxy as
the HTTP(S) proxy of the process, so a request meant for any other address (the public
Jina endpoint, the upstream server directly) reaches the proxy too, as a ``CONNECT`` or
an absolute-URI request; it is refused (403) and recorded in ``elsewhere``. A test then
asserts ``proxy.elsewhere == []`` and that the expected requests were forwarded.

Real sockets, real HTTP (``http.server`` + ``http.client``); no mocking of the client.
"""

from __future__ import annotations

import http.client
import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

_HOP_BY_HOP = {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailers",
               "transfer-encoding", "upgrade", "proxy-connection", "content-length"}


@dataclass
class Seen:
    """One request the proxy received."""

    method: str
    host: str  # host:port the client meant
    path: str
    forwarded: bool
    model: str | None = None  # the JSON body's "model", when there is one
    had_key: bool = False  # an Authorization header was sent (its value is not kept)


@dataclass
class LoopbackProxy:
    """Forward to ``upstream`` (``http://host:port``); see the module docstring."""

    upstream: str
    seen: list[Seen] = field(default_factory=list)

    def __post_init__(self) -> None:
        up = urlsplit(self.upstream)
        self._up_host, self._up_port = up.hostname or "127.0.0.1", up.port or 80
        self._lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:  # quiet
                pass

            def do_CONNECT(self) -> None:  # noqa: N802 - https to anywhere: refused and recorded
                proxy._record(Seen("CONNECT", self.path, "", False))
                self.send_response(403)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def _any(self) -> None:
                target = urlsplit(self.path)
                own = f"127.0.0.1:{proxy.port}"
                host = target.netloc or self.headers.get("Host", "")
                path = (target.path or "/") + (f"?{target.query}" if target.query else "")
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n) if n else b""
                model = None
                if body:
                    try:
                        obj = json.loads(body)
                        model = obj.get("model") if isinstance(obj, dict) else None
                    except ValueError:
                        pass
                mine = host in (own, f"localhost:{proxy.port}")
                proxy._record(Seen(self.command, host, path, mine, model, "Authorization" in self.headers))
                if not mine:
                    self.send_response(403)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                conn = http.client.HTTPConnection(proxy._up_host, proxy._up_port, timeout=120)
                headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP | {"host"}}
                headers["Host"] = f"{proxy._up_host}:{proxy._up_port}"
                try:
                    conn.request(self.command, path, body=body or None, headers=headers)
                    resp = conn.getresponse()
                    data = resp.read()
                    self.send_response(resp.status)
                    for k, v in resp.getheaders():
                        if k.lower() not in _HOP_BY_HOP:
                            self.send_header(k, v)
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                finally:
                    conn.close()

            do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _any  # noqa: N815

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, name="loopback-proxy", daemon=True)

    def _record(self, s: Seen) -> None:
        with self._lock:
            self.seen.append(s)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def elsewhere(self) -> list[Seen]:
        """Requests meant for any address other than the proxy's own."""
        with self._lock:
            return [s for s in self.seen if not s.forwarded]

    @property
    def forwarded(self) -> list[Seen]:
        with self._lock:
            return [s for s in self.seen if s.forwarded]

    def env(self) -> dict[str, str]:
        """Environment that routes every other HTTP(S) request of a process through this proxy."""
        return {"HTTP_PROXY": self.base_url, "HTTPS_PROXY": self.base_url, "ALL_PROXY": self.base_url,
                "http_proxy": self.base_url, "https_proxy": self.base_url, "all_proxy": self.base_url,
                "NO_PROXY": "", "no_proxy": ""}

    def __enter__(self) -> LoopbackProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)
