"""A PostgreSQL wire-protocol proxy that counts database round trips.

The application talks to the proxy instead of the server during a short calibration run, so the
count covers everything the production stack sends: Django's health check, BEGIN/COMMIT, every
query. A round trip is one client message that makes the client wait for the server: a simple
``Query`` ('Q') or an extended-protocol ``Sync`` ('S'). The SQL text of each one is kept (from
'Q', or from the 'Parse' that a 'Bind' refers to) so the report can list what a request sends.

Only client-to-server bytes are parsed; server replies are passed through untouched. TLS is not
supported (the bench connects with ``sslmode=disable`` through the proxy).
"""

from __future__ import annotations

import asyncio
import re
import struct
import threading
from dataclasses import dataclass, field

SSL_REQUEST = 80877103
GSSENC_REQUEST = 80877104
CANCEL_REQUEST = 80877102


@dataclass
class RoundTrip:
    statements: list[str] = field(default_factory=list)


class Counter:
    """Round trips seen since the last ``reset()``; thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._trips: list[RoundTrip] = []

    def add(self, trip: RoundTrip) -> None:
        with self._lock:
            self._trips.append(trip)

    def reset(self) -> None:
        with self._lock:
            self._trips = []

    def take(self) -> list[RoundTrip]:
        with self._lock:
            trips, self._trips = self._trips, []
        return trips


_LITERAL = re.compile(r"'(?:[^']|'')*'|\b\d+(?:\.\d+)?\b")
_IN_LIST = re.compile(r"IN \((?:\?, )*\?\)")


def normalize(sql: str) -> str:
    """Collapse literals so the same statement with different values reads the same."""
    text = " ".join(sql.split())
    text = _LITERAL.sub("?", text)
    return _IN_LIST.sub("IN (...)", text)


class _ClientStream:
    """Incremental parser of one connection's frontend messages."""

    def __init__(self, counter: Counter) -> None:
        self.counter = counter
        self.buffer = bytearray()
        self.startup = True
        self.prepared: dict[bytes, str] = {}
        self.pending = RoundTrip()

    def feed(self, data: bytes) -> None:
        self.buffer += data
        while True:
            if self.startup:
                if len(self.buffer) < 8:
                    return
                (length,) = struct.unpack("!I", self.buffer[:4])
                if len(self.buffer) < length:
                    return
                (code,) = struct.unpack("!I", self.buffer[4:8])
                del self.buffer[:length]
                if code not in (SSL_REQUEST, GSSENC_REQUEST):
                    self.startup = False  # the StartupMessage (or a cancel request) ends the untyped phase
                continue
            if len(self.buffer) < 5:
                return
            kind = self.buffer[0:1]
            (length,) = struct.unpack("!I", self.buffer[1:5])
            if len(self.buffer) < 1 + length:
                return
            body = bytes(self.buffer[5 : 1 + length])
            del self.buffer[: 1 + length]
            self._message(kind, body)

    def _message(self, kind: bytes, body: bytes) -> None:
        if kind == b"Q":
            self.pending.statements.append(body.split(b"\0", 1)[0].decode(errors="replace"))
            self._close_trip()
        elif kind == b"P":
            name, rest = body.split(b"\0", 1)
            self.prepared[name] = rest.split(b"\0", 1)[0].decode(errors="replace")
        elif kind == b"B":
            _portal, rest = body.split(b"\0", 1)
            statement = rest.split(b"\0", 1)[0]
            self.pending.statements.append(self.prepared.get(statement, "<unknown prepared statement>"))
        elif kind == b"S":
            self._close_trip()

    def _close_trip(self) -> None:
        self.counter.add(self.pending)
        self.pending = RoundTrip()


class CountingProxy:
    """Runs an asyncio proxy in a daemon thread: ``with CountingProxy(port=0) as proxy: proxy.port``."""

    def __init__(self, *, upstream_host: str = "127.0.0.1", upstream_port: int = 5432) -> None:
        self.upstream = (upstream_host, upstream_port)
        self.counter = Counter()
        self.port = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._server: asyncio.base_events.Server | None = None

    def __enter__(self) -> CountingProxy:
        self._thread = threading.Thread(target=self._run, name="pg-counting-proxy", daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("the counting proxy did not start")
        return self

    def __exit__(self, *exc) -> None:
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(5)

    def _run(self) -> None:
        self._loop = asyncio.new_event_loop()
        asyncio.set_event_loop(self._loop)
        self._server = self._loop.run_until_complete(asyncio.start_server(self._handle, "127.0.0.1", 0))
        self.port = self._server.sockets[0].getsockname()[1]
        self._ready.set()
        self._loop.run_forever()

    async def _handle(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        try:
            server_reader, server_writer = await asyncio.open_connection(*self.upstream)
        except OSError:
            client_writer.close()
            return
        stream = _ClientStream(self.counter)

        async def client_to_server() -> None:
            while data := await client_reader.read(65536):
                stream.feed(data)
                server_writer.write(data)
                await server_writer.drain()
            server_writer.close()

        async def server_to_client() -> None:
            while data := await server_reader.read(65536):
                client_writer.write(data)
                await client_writer.drain()
            client_writer.close()

        await asyncio.gather(client_to_server(), server_to_client(), return_exceptions=True)
