"""A lean HTTP/1.1 client for the one call adapters make: a JSON POST, its answer read whole.

aiohttp's ClientSession spends ~125 us of CPU per request (64 in flight, zero-latency server on
loopback): request and response objects, cookie jar, tracing hooks, a writer task, timers. At
2,000 calls a second that is a quarter of the worker's core. This client keeps only what an
API call needs, with httptools (llhttp, the parser uvicorn runs on) reading the answers: ~40 us
in the same measurement.

- http and https (certifi's CAs, the same context for every call), keep-alive connections
  pooled per origin up to a limit, idle ones dropped after KEEPALIVE_S;
- Content-Length and chunked answers, gzip and deflate bodies;
- a POST is never sent twice: a connection that breaks before the whole answer is read raises
  `HttpConnectionError` and the pipeline's retry decides. A call cancelled mid-way (the
  adapter's timeout) closes its connection, so no late answer is read as another call's.

Proxied URLs (HTTPS_PROXY and the rest, as aiohttp reads them) and URLs with credentials go
through `transport.AiohttpSender` instead.
"""

from __future__ import annotations

import asyncio
import ssl
import time
import zlib
from collections import deque
from typing import Any

import httptools
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

from providers.transport import AiohttpSender, HttpAnswer, tls_context

KEEPALIVE_S = 15.0  # aiohttp's default: an idle connection older than this is closed, not reused
_USER_AGENT = b"frugal"


class HttpConnectionError(ConnectionError):
    """The connection broke, or the server's answer was not HTTP/1.1 we can read."""


class _Connection(asyncio.Protocol):
    """One keep-alive connection: at most one call on it at a time."""

    def __init__(self, origin: _Origin) -> None:
        self._origin = origin
        self._parser = httptools.HttpResponseParser(self)
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.idle_since = 0.0
        self._answer: asyncio.Future[HttpAnswer] | None = None
        self._headers: list[tuple[str, str]] = []
        self._headers_done = False
        self._body: list[bytes] = []

    # --- asyncio.Protocol -----------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._origin.forget(self)
        if exc is None and self._ends_at_close():
            self.on_message_complete()  # a body delimited by the close itself (HTTP/1.0 style)
        self._fail(HttpConnectionError("the server closed the connection before answering"))

    def data_received(self, data: bytes) -> None:
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(HttpConnectionError(f"unreadable HTTP answer: {exc}"))
            self.close()

    # --- httptools callbacks --------------------------------------------------------------

    def on_message_begin(self) -> None:
        self._headers = []
        self._headers_done = False
        self._body = []

    def on_headers_complete(self) -> None:
        self._headers_done = True

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers.append((name.decode("latin-1"), value.decode("latin-1")))

    def on_body(self, body: bytes) -> None:
        self._body.append(body)

    def on_message_complete(self) -> None:
        status = self._parser.get_status_code()
        if status < 200:
            return  # an interim answer (100 Continue, 103 Early Hints): the real one follows
        answer, self._answer = self._answer, None
        keep = self._parser.should_keep_alive()
        if answer is not None and not answer.done():
            try:
                answer.set_result(_answer(status, self._headers, self._body))
            except HttpConnectionError as exc:
                answer.set_exception(exc)
                keep = False
        if keep and answer is not None and not self.closed:
            self._origin.put_back(self)
        else:
            self.close()

    def _ends_at_close(self) -> bool:
        """An answer under way whose length neither Content-Length nor chunking gives."""
        if self._answer is None or not self._headers_done:
            return False
        framing = {"content-length", "transfer-encoding"}
        return not any(name.lower() in framing for name, _ in self._headers)

    # --- calls ----------------------------------------------------------------------------

    async def exchange(self, request: bytes) -> HttpAnswer:
        assert self.transport is not None
        self._answer = answer = asyncio.get_running_loop().create_future()
        self.transport.write(request)
        return await answer

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()

    def _fail(self, error: HttpConnectionError) -> None:
        answer, self._answer = self._answer, None
        if answer is not None and not answer.done():
            answer.set_exception(error)


def _answer(status: int, headers: list[tuple[str, str]], body: list[bytes]) -> HttpAnswer:
    content = b"".join(body)
    view = CIMultiDictProxy(CIMultiDict(headers))
    encoding = view.get("content-encoding", "").strip().lower()
    if encoding and encoding != "identity":
        content = _decompress(content, encoding)
    return HttpAnswer(status, view, content)


def _decompress(content: bytes, encoding: str) -> bytes:
    try:
        if encoding == "gzip":
            return zlib.decompress(content, 16 + zlib.MAX_WBITS)
        if encoding == "deflate":  # zlib-wrapped as the RFC says, or raw as some servers send
            try:
                return zlib.decompress(content)
            except zlib.error:
                return zlib.decompress(content, -zlib.MAX_WBITS)
    except zlib.error as exc:
        raise HttpConnectionError(f"answer body is not valid {encoding}: {exc}") from None
    raise HttpConnectionError(f"answer body has an encoding we did not ask for: {encoding}")


class _Origin:
    """The idle connections to one scheme://host:port, the warmest first."""

    def __init__(self, host: str, port: int, tls: ssl.SSLContext | None) -> None:
        self._host = host
        self._port = port
        self._tls = tls
        self._idle: deque[_Connection] = deque()
        self.open: set[_Connection] = set()

    def forget(self, connection: _Connection) -> None:
        self.open.discard(connection)
        if connection in self._idle:
            self._idle.remove(connection)

    def put_back(self, connection: _Connection) -> None:
        connection.idle_since = time.monotonic()
        self._idle.append(connection)

    async def connection(self) -> _Connection:
        stale_before = time.monotonic() - KEEPALIVE_S
        while self._idle:
            connection = self._idle.pop()
            if not connection.closed and connection.idle_since > stale_before:
                return connection
            connection.close()
        _, connection = await asyncio.get_running_loop().create_connection(
            lambda: _Connection(self),
            self._host,
            self._port,
            ssl=self._tls,
            server_hostname=self._host if self._tls is not None else None,
        )
        self.open.add(connection)
        return connection

    def close(self) -> None:
        for connection in list(self.open):
            connection.close()


class _Target:
    """A URL's origin and the request bytes that never change between calls to it; no origin
    when aiohttp sends its calls (a proxy, credentials in the URL, another scheme)."""

    def __init__(self, origin: _Origin | None, head: bytes, headers: object) -> None:
        self.origin = origin
        self.head = head
        self.headers = headers  # the mapping `head` was built from (compared by identity)


def _request_head(url: URL, headers: dict[str, str] | Any) -> bytes:
    lines = [
        f"POST {url.raw_path_qs} HTTP/1.1",
        f"Host: {url.host_port_subcomponent}",
        "Accept: */*",
        "Accept-Encoding: gzip, deflate",
        f"User-Agent: {_USER_AGENT.decode()}",
        *(f"{name}: {value}" for name, value in headers.items()),
    ]
    for line in lines:
        if "\r" in line or "\n" in line:
            name = line.split(":", 1)[0]
            raise ValueError(f"HTTP header {name!r} (or the URL) contains a line break")
    return ("\r\n".join(lines) + "\r\n").encode("latin-1")


class Http1Sender:
    """The adapters' default sender: pooled HTTP/1.1 keep-alive connections, at most
    `max_connections` calls at once; proxied URLs go through aiohttp."""

    def __init__(self, max_connections: int, timeout_s: float) -> None:
        self._slots = asyncio.Semaphore(max_connections)
        self._targets: dict[str, _Target] = {}
        self._origins: dict[tuple[str, str, int], _Origin] = {}
        self._aiohttp = AiohttpSender(max_connections, timeout_s)

    async def post(self, url: str, body: bytes, headers: Any) -> HttpAnswer:
        target = self._targets.get(url)
        if target is None or target.headers is not headers:
            target = self._targets[url] = self._target(url, headers)
        if target.origin is None:
            return await self._aiohttp.post(url, body, headers)
        request = b"%sContent-Length: %d\r\n\r\n%s" % (target.head, len(body), body)
        async with self._slots:
            connection = await target.origin.connection()
            try:
                return await connection.exchange(request)
            except BaseException:
                connection.close()  # a late answer must not be read as the next call's
                raise

    def _target(self, url: str, headers: Any) -> _Target:
        parsed = URL(url)
        if parsed.scheme not in ("http", "https") or parsed.user or self._aiohttp.proxied(url):
            return _Target(None, b"", headers)
        assert parsed.host is not None and parsed.port is not None
        key = (parsed.scheme, parsed.host, parsed.port)
        origin = self._origins.get(key)
        if origin is None:
            tls = tls_context() if parsed.scheme == "https" else None
            origin = self._origins[key] = _Origin(parsed.host, parsed.port, tls)
        return _Target(origin, _request_head(parsed, headers), headers)

    async def aclose(self) -> None:
        for origin in self._origins.values():
            origin.close()
        self._origins.clear()
        self._targets.clear()
        await self._aiohttp.aclose()
