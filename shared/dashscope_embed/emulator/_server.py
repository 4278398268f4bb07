"""The emulator on a real loopback socket: stdlib ``ThreadingHTTPServer`` in a background thread.

Used by integration tests, benchmarks and ``python -m dashscope_embed.emulator``. HTTP/1.1 with
keep-alive: every answer carries ``Content-Length`` so a client can reuse the connection, and the
handler thread waits the emulated latency itself, so slow answers do not block other clients.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from urllib.parse import parse_qsl, urlsplit

from dashscope_embed.emulator._app import Emulator, EmulatorConfig, EmuRequest

__all__ = ["EmulatorServer", "serve"]

logger = logging.getLogger(__name__)


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 256  # many clients may connect at once (the default backlog is 5)

    def __init__(self, address: tuple[str, int], emulator: Emulator, verbose: bool) -> None:
        self.emulator = emulator
        self.verbose = verbose
        self.open_sockets: set[socket.socket] = set()
        self.sockets_lock = threading.Lock()
        super().__init__(address, _Handler)

    def handle_error(self, request: object, client_address: object) -> None:
        # The stdlib prints a traceback to stderr (e.g. when a client hangs up mid-answer); a test
        # double should stay quiet, so log it at DEBUG instead.
        logger.debug("connection from %s failed", client_address, exc_info=True)

    def close_open_sockets(self) -> None:
        """Hang up on keep-alive clients so no handler thread outlives the server."""
        with self.sockets_lock:
            sockets = list(self.open_sockets)
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out in separate writes
    server: _HTTPServer

    def setup(self) -> None:
        super().setup()
        with self.server.sockets_lock:
            self.server.open_sockets.add(self.connection)

    def finish(self) -> None:
        with self.server.sockets_lock:
            self.server.open_sockets.discard(self.connection)
        super().finish()

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks: list[bytes] = []
            while True:
                size = int(self.rfile.readline().split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _dispatch(self) -> None:
        url = urlsplit(self.path)
        request = EmuRequest(
            self.command,
            url.path,
            dict(self.headers.items()),
            self._read_body(),
            dict(parse_qsl(url.query, keep_blank_values=True)),
        )
        response = self.server.emulator.handle(request)
        if response.delay > 0:
            time.sleep(response.delay)
        if response.drop:
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)
            return
        self.send_response(response.status)
        for name, value in response.headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(response.body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(response.body)

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = _dispatch

    def log_message(self, format: str, *args: object) -> None:
        if self.server.verbose:
            super().log_message(format, *args)


class EmulatorServer:
    """The emulator served on ``host:port`` from a background thread; a context manager.

    Args:
        emulator: The emulator to serve; a new one from ``config`` if omitted.
        host: Interface to bind; loopback by default.
        port: Port to bind; 0 picks a free one (see :attr:`url` after :meth:`start`).
        config: Configuration for a new emulator (ignored when ``emulator`` is given).
        verbose: Write an access log line per request to stderr.
    """

    def __init__(
        self,
        emulator: Emulator | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        config: EmulatorConfig | None = None,
        verbose: bool = False,
    ) -> None:
        self.emulator = emulator if emulator is not None else Emulator(config)
        self.host = host
        self.port = port
        self.verbose = verbose
        self._server: _HTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """Base URL, e.g. ``"http://127.0.0.1:8123"`` (the bound port once started)."""
        return f"http://{self.host}:{self.port}"

    def start(self) -> EmulatorServer:
        """Bind and start serving in a daemon thread (idempotent)."""
        if self._server is None:
            self._server = _HTTPServer((self.host, self.port), self.emulator, self.verbose)
            self.port = self._server.server_address[1]
            self._thread = threading.Thread(
                target=self._server.serve_forever,
                kwargs={"poll_interval": 0.05},
                name=f"dashscope-emulator-{self.port}",
                daemon=True,
            )
            self._thread.start()
            logger.debug("emulator listening on %s", self.url)
        return self

    def stop(self) -> None:
        """Stop serving, hang up on open connections and release the port (idempotent)."""
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.close_open_sockets()
        server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    close = stop

    def wait(self) -> None:
        """Block until the server stops (Ctrl-C raises ``KeyboardInterrupt`` here)."""
        while self._thread is not None and self._thread.is_alive():
            self._thread.join(timeout=0.5)

    def __enter__(self) -> EmulatorServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


def serve(
    emulator: Emulator | None = None,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    config: EmulatorConfig | None = None,
    verbose: bool = False,
) -> EmulatorServer:
    """Start the emulator on a loopback port and return the running server.

    Use it as a context manager (``with serve() as server: ... server.url``) or call
    :meth:`EmulatorServer.stop` when done.
    """
    return EmulatorServer(emulator, host=host, port=port, config=config, verbose=verbose).start()
