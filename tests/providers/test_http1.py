"""The adapters' HTTP/1.1 client against a scripted server on loopback: keep-alive, chunked and
compressed answers, broken connections, cancelled calls, the connection limit, proxies."""

from __future__ import annotations

import asyncio
import gzip
import ipaddress
import json
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import pytest_asyncio
from pydantic import SecretStr

from providers import http1
from providers.http1 import Http1Sender, HttpConnectionError
from providers.openai import OpenAIAdapter
from schemas.completion import CompletionRequest
from schemas.config import ModelConfig, ProviderConfig
from schemas.errors import ConnectionFailed

ANSWER = b'{"ok": true}'
HEADERS = {"content-type": "application/json", "authorization": "Bearer sk-test-secret-1234"}


@dataclass
class Scripted:
    """A loopback HTTP/1.1 server whose answer depends on the request path."""

    connections: int = 0
    open_now: int = 0
    most_open: int = 0
    requests: list[tuple[str, dict[str, str], bytes]] = field(default_factory=list)
    release: asyncio.Event = field(default_factory=asyncio.Event)
    server: asyncio.Server | None = None

    @property
    def url(self) -> str:
        assert self.server is not None
        host, port = self.server.sockets[0].getsockname()[:2]
        return f"http://{host}:{port}"

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self.open_now += 1
        self.most_open = max(self.most_open, self.open_now)
        try:
            while await self._one(reader, writer):
                pass
        except (asyncio.CancelledError, ConnectionError, asyncio.IncompleteReadError):
            pass  # the client hung up, or the test ended
        finally:
            self.open_now -= 1
            writer.close()

    async def _one(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        head = await reader.readuntil(b"\r\n\r\n") if not reader.at_eof() else b""
        if not head:
            return False
        line, *lines = head.decode("latin-1").split("\r\n")
        headers = {k.lower(): v.strip() for k, v in (x.split(":", 1) for x in lines if x)}
        body = await reader.readexactly(int(headers.get("content-length", "0")))
        path = line.split(" ")[1]
        self.requests.append((line, headers, body))
        reply = await self._reply(path.rsplit("/", 1)[-1])
        if reply is None:
            return False  # drop: close without answering
        writer.write(reply)
        await writer.drain()
        return b"Connection: close" not in reply and not path.endswith(("half", "until_close"))

    async def _reply(self, name: str) -> bytes | None:
        ok = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nX-Request-ID: r1\r\n"
        if name == "plain":
            return ok + b"Content-Length: %d\r\n\r\n%s" % (len(ANSWER), ANSWER)
        if name == "held":
            await self.release.wait()
            return ok + b"Content-Length: %d\r\n\r\n%s" % (len(ANSWER), ANSWER)
        if name == "chunked":
            return ok + b'Transfer-Encoding: chunked\r\n\r\n5\r\n{"ok"\r\n7\r\n: true}\r\n0\r\n\r\n'
        if name == "gzip":
            packed = gzip.compress(ANSWER)
            return ok + b"Content-Encoding: gzip\r\nContent-Length: %d\r\n\r\n%s" % (
                len(packed),
                packed,
            )
        if name == "close":
            return ok + b"Connection: close\r\nContent-Length: %d\r\n\r\n%s" % (len(ANSWER), ANSWER)
        if name == "until_close":
            return ok + b"\r\n" + ANSWER  # no length: the body ends where the connection does
        if name == "half":
            return ok + b'Content-Length: 100\r\n\r\n{"ok"'
        if name == "interim":
            return b"HTTP/1.1 100 Continue\r\n\r\n" + ok + b"Content-Length: 12\r\n\r\n" + ANSWER
        if name == "slow":
            await asyncio.sleep(3600)
        return None


@pytest_asyncio.fixture
async def scripted() -> AsyncIterator[Scripted]:
    server = Scripted()
    server.server = await asyncio.start_server(server.handle, "127.0.0.1", 0)
    yield server
    server.server.close()


@pytest_asyncio.fixture
async def sender() -> AsyncIterator[Http1Sender]:
    client = Http1Sender(max_connections=8, timeout_s=5)
    yield client
    await client.aclose()


async def test_calls_share_one_keep_alive_connection(
    scripted: Scripted, sender: Http1Sender
) -> None:
    for _ in range(5):
        answer = await sender.post(f"{scripted.url}/v1/plain", b'{"q": 1}', HEADERS)
        assert (answer.status_code, answer.content) == (200, ANSWER)
        assert answer.headers["x-request-id"] == "r1"  # case-insensitive
    assert scripted.connections == 1
    line, headers, body = scripted.requests[0]
    assert line == "POST /v1/plain HTTP/1.1"
    assert headers["host"] == scripted.url.removeprefix("http://")
    assert headers["content-length"] == "8" and body == b'{"q": 1}'
    assert headers["authorization"] == HEADERS["authorization"]


@pytest.mark.parametrize("path", ["chunked", "gzip", "interim", "until_close"])
async def test_chunked_compressed_and_interim_answers_are_read_whole(
    scripted: Scripted, sender: Http1Sender, path: str
) -> None:
    answer = await sender.post(f"{scripted.url}/{path}", b"{}", HEADERS)
    assert (answer.status_code, json.loads(answer.content)) == (200, {"ok": True})


async def test_connection_close_answer_is_read_and_the_next_call_reconnects(
    scripted: Scripted, sender: Http1Sender
) -> None:
    assert (await sender.post(f"{scripted.url}/close", b"{}", HEADERS)).content == ANSWER
    assert (await sender.post(f"{scripted.url}/plain", b"{}", HEADERS)).content == ANSWER
    assert scripted.connections == 2


@pytest.mark.parametrize("path", ["drop", "half"])
async def test_a_connection_broken_before_the_whole_answer_raises_and_is_not_reused(
    scripted: Scripted, sender: Http1Sender, path: str
) -> None:
    with pytest.raises(HttpConnectionError):
        await sender.post(f"{scripted.url}/{path}", b"{}", HEADERS)
    assert (await sender.post(f"{scripted.url}/plain", b"{}", HEADERS)).content == ANSWER
    assert scripted.connections == 2
    assert len(scripted.requests) == 2  # the broken call was not sent again


async def test_a_cancelled_call_closes_its_connection(
    scripted: Scripted, sender: Http1Sender
) -> None:
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.2):
            await sender.post(f"{scripted.url}/slow", b"{}", HEADERS)
    assert (await sender.post(f"{scripted.url}/plain", b"{}", HEADERS)).content == ANSWER
    assert scripted.connections == 2


async def test_no_more_connections_than_the_limit(scripted: Scripted) -> None:
    client = Http1Sender(max_connections=2, timeout_s=5)
    calls = [
        asyncio.create_task(client.post(f"{scripted.url}/held", b"{}", HEADERS)) for _ in range(6)
    ]
    async with asyncio.timeout(5):
        while len(scripted.requests) < 2:
            await asyncio.sleep(0.01)
    assert scripted.open_now == 2  # the other four wait for a slot, not on new connections
    scripted.release.set()
    answers = await asyncio.gather(*calls)
    await client.aclose()
    assert [a.content for a in answers] == [ANSWER] * 6
    assert scripted.most_open == 2


async def test_an_idle_connection_past_keep_alive_is_not_reused(
    scripted: Scripted, sender: Http1Sender, monkeypatch: pytest.MonkeyPatch
) -> None:
    await sender.post(f"{scripted.url}/plain", b"{}", HEADERS)
    monkeypatch.setattr(http1, "KEEPALIVE_S", -1.0)
    await sender.post(f"{scripted.url}/plain", b"{}", HEADERS)
    assert scripted.connections == 2


async def test_a_proxied_url_goes_through_the_proxy(
    scripted: Scripted, sender: Http1Sender, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HTTP_PROXY", scripted.url)
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    answer = await sender.post("http://provider.invalid/v1/plain", b"{}", HEADERS)
    assert answer.content == ANSWER
    assert scripted.requests[0][0] == "POST http://provider.invalid/v1/plain HTTP/1.1"


async def test_a_header_with_a_line_break_is_refused_without_its_value(
    scripted: Scripted, sender: Http1Sender
) -> None:
    with pytest.raises(ValueError, match="authorization") as refused:
        await sender.post(f"{scripted.url}/plain", b"{}", {"authorization": "Bearer sk-1\n"})
    assert "sk-1" not in str(refused.value)
    assert scripted.requests == []


async def test_a_dropped_call_is_a_connection_failure_without_the_key(scripted: Scripted) -> None:
    provider = ProviderConfig(
        name="p",
        kind="openai",
        base_url=f"{scripted.url}/drop",
        api_key=SecretStr("sk-test-secret-1234"),
    )
    adapter = OpenAIAdapter(provider)
    model = ModelConfig(name="m", provider="p", model="m", input_per_mtok=1, output_per_mtok=1)
    request = CompletionRequest(prompt="hi")
    with pytest.raises(ConnectionFailed) as failed:
        await adapter.complete(model, request)
    await adapter.aclose()
    assert "connection failed" in str(failed.value)
    assert "sk-test-secret-1234" not in str(failed.value)


def _self_signed(folder: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and its key, as PEM files."""
    x509 = pytest.importorskip("cryptography.x509")
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "frugal-test")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


@pytest_asyncio.fixture
async def tls_scripted(tmp_path: Path) -> AsyncIterator[tuple[Scripted, Path]]:
    cert, key = _self_signed(tmp_path)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    server = Scripted()
    server.server = await asyncio.start_server(server.handle, "127.0.0.1", 0, ssl=context)
    yield server, cert
    server.server.close()


async def test_https_calls_verify_the_server_and_share_a_connection(
    tls_scripted: tuple[Scripted, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    server, cert = tls_scripted
    url = server.url.replace("http://", "https://")
    monkeypatch.setattr(http1, "tls_context", lambda: ssl.create_default_context(cafile=cert))
    client = Http1Sender(max_connections=4, timeout_s=5)
    answers = [await client.post(f"{url}/plain", b"{}", HEADERS) for _ in range(3)]
    await client.aclose()
    assert [a.content for a in answers] == [ANSWER] * 3
    assert server.connections == 1


async def test_an_untrusted_certificate_is_a_connection_failure(
    tls_scripted: tuple[Scripted, Path],
) -> None:
    server, _ = tls_scripted  # signed by nobody certifi trusts
    provider = ProviderConfig(
        name="p", kind="openai", base_url=server.url.replace("http://", "https://") + "/v1"
    )
    adapter = OpenAIAdapter(provider)
    model = ModelConfig(name="m", provider="p", model="m", input_per_mtok=1, output_per_mtok=1)
    with pytest.raises(ConnectionFailed, match="CERTIFICATE_VERIFY_FAILED"):
        await adapter.complete(model, CompletionRequest(prompt="hi"))
    await adapter.aclose()
    assert server.requests == []
