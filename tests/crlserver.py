"""A threaded HTTP server on loopback that serves a CRL, or fails to.

Revocation checking fetches the CRL named in the server certificate's CRL
Distribution Point over plain HTTP (RFC 5280 4.2.1.13); the tests need that
fetch to succeed, to fail with an HTTP error, to hang, or to return
something that is not a CRL, and need to know whether it happened at all.

Every wait is bounded (a silent request, stopping), so a broken test fails
instead of hanging the suite.
"""

from __future__ import annotations

import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Literal

__all__ = ["CrlMode", "CrlServer"]

CrlMode = Literal["ok", "error", "silent", "not-crl"]

# RFC 5280 4.2.1.13 / RFC 2585 4.2: a DER CRL over HTTP is served as this.
CRL_CONTENT_TYPE = "application/pkix-crl"
# How long a "silent" request is held at most: longer than any client
# timeout in the tests, shorter than the suite's per-test timeout.
_HOLD_LIMIT = 10.0
# Per-connection socket timeout of the handler, and the bound on stop().
_IO_TIMEOUT = 5.0
# How quickly serve_forever() notices shutdown().
_POLL = 0.05


class _Handler(BaseHTTPRequestHandler):
    # StreamRequestHandler applies this to the accepted socket.
    timeout = _IO_TIMEOUT

    def do_GET(self) -> None:
        server = self.server
        assert isinstance(server, _HttpServer)
        owner = server.owner
        mode = owner.record(self.path)
        if mode == "silent":
            # Neither answer nor close: the client's read must time out.
            owner.stopping.wait(_HOLD_LIMIT)
            self.close_connection = True
            return
        if mode == "error":
            body, status, kind = b"internal error\n", 500, "text/plain"
        elif mode == "not-crl":
            # What a captive portal or a misconfigured web server returns.
            body, status, kind = b"<html>sign in first</html>\n", 200, "text/html"
        else:
            body, status, kind = owner.crl, 200, CRL_CONTENT_TYPE
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass  # tests print nothing


class _HttpServer(ThreadingHTTPServer):
    def __init__(self, address: tuple[str, int], owner: CrlServer) -> None:
        self.owner = owner
        super().__init__(address, _Handler)


class _HttpServer6(_HttpServer):
    address_family = socket.AF_INET6


class CrlServer:
    """An HTTP server on loopback that serves one CRL at :attr:`url`.

    Args:
        crl: the CRL to serve, DER.
        mode: ``"ok"`` serves the CRL as ``application/pkix-crl``;
            ``"error"`` answers 500; ``"silent"`` never answers (the
            connection is held until the server stops, 10 s at most);
            ``"not-crl"`` answers 200 with an HTML page.
        path: the path part of :attr:`url`.
        host: the loopback address to listen on.

    Attributes:
        crl, mode: as given; may be changed while the server runs.
        paths: the path of every request received, in order.

    Raises:
        ValueError: ``host`` is not a loopback address.
    """

    def __init__(
        self,
        crl: bytes = b"",
        *,
        mode: CrlMode = "ok",
        path: str = "/root.crl",
        host: str = "127.0.0.1",
    ) -> None:
        if host not in ("127.0.0.1", "::1"):
            raise ValueError(f"a test server listens on loopback only, not {host!r}")
        self.crl = crl
        self.mode: CrlMode = mode
        self.host = host
        self.port = 0
        self.paths: list[str] = []
        self.stopping = threading.Event()
        self._path = path
        self._lock = threading.Lock()
        self._httpd: _HttpServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """The CRL's URL, for a certificate's CRL Distribution Point."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}{self._path}"

    @property
    def requests(self) -> int:
        """How many requests arrived since start(), whatever their outcome."""
        with self._lock:
            return len(self.paths)

    def record(self, path: str) -> CrlMode:
        """Count a request; called by the handler thread.

        Args:
            path: the request's path.

        Returns:
            The mode to answer it in.
        """
        with self._lock:
            self.paths.append(path)
            return self.mode

    def __enter__(self) -> CrlServer:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> None:
        """Bind a free port and serve in a background thread.

        Raises:
            RuntimeError: the server is already running.
            OSError: the port could not be bound.
        """
        if self._httpd is not None:
            raise RuntimeError("the CRL server is already running")
        kind = _HttpServer6 if ":" in self.host else _HttpServer
        httpd = kind((self.host, 0), self)
        self.port = httpd.server_address[1]
        self.stopping.clear()
        with self._lock:
            self.paths.clear()
        self._httpd = httpd
        self._thread = threading.Thread(
            target=httpd.serve_forever, args=(_POLL,), daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        """Release held requests, stop serving and join every thread.

        Does nothing if the server is not running.

        Raises:
            TimeoutError: the server thread did not stop within 5 seconds.
        """
        httpd, self._httpd = self._httpd, None
        if httpd is None:
            return
        self.stopping.set()
        httpd.shutdown()
        # server_close() joins the request threads (ThreadingMixIn's
        # block_on_close); each is bounded by the stop event and _IO_TIMEOUT.
        httpd.server_close()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(_IO_TIMEOUT)
            if thread.is_alive():
                raise TimeoutError("the CRL server thread did not stop")
