"""gateway/fetch.py: SSRF checks, pinning to the checked address, redirects, size cap and timeouts.

Network rule: traffic goes only to servers these tests start on 127.0.0.1. Refused targets are checked with a
stubbed resolver and a transport that fails the test if it is ever asked to send anything.
"""

from __future__ import annotations

import asyncio
import shutil
import socket
import ssl
import subprocess
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import httpx
import pytest

from gateway.errors import UrlFetchFailed, UrlForbidden
from gateway.fetch import FetchPolicy, fetch_url
from replate.errors import ImageTooLarge, InvalidRequest

PAYLOAD = bytes(range(256)) * 8  # 2048 bytes
PUBLIC_V4 = "93.184.215.14"
PUBLIC_V6 = "2606:4700:4700::1111"
POLICY = FetchPolicy(max_bytes=4096, read_timeout_s=2.0)
LOCAL = FetchPolicy(max_bytes=4096, read_timeout_s=2.0, allowed_hosts=frozenset({"127.0.0.1"}))


class NoNetwork(httpx.AsyncBaseTransport):
    """A transport that fails the test if a request ever reaches it."""

    def __init__(self) -> None:
        self.requests: list[httpx.Request] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        raise AssertionError(f"a request was sent to {request.url.host}")


class StubResolver:
    def __init__(self, table: dict[str, list[str]]) -> None:
        self.table = table
        self.calls: list[tuple[str, int]] = []

    async def __call__(self, host: str, port: int) -> list[str]:
        self.calls.append((host, port))
        if host not in self.table:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return self.table[host]


def recording(handler: Callable[[httpx.Request], httpx.Response]) -> tuple[httpx.MockTransport, list[httpx.Request]]:
    seen: list[httpx.Request] = []

    def record(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return handler(request)

    return httpx.MockTransport(record), seen


# --- a tiny HTTP/1.1 server on 127.0.0.1 --------------------------------------------------------------------------

Writer = asyncio.StreamWriter


class LocalServer:
    """Serves the routes below on 127.0.0.1; records each request's path and headers and counts connections."""

    def __init__(self) -> None:
        self.port = 0
        self.connections = 0
        self.requests: list[tuple[str, dict[str, str]]] = []
        self.sni_names: list[str | None] = []
        self.stop = asyncio.Event()
        self.tasks: set[asyncio.Task[None]] = set()

    async def handle(self, reader: asyncio.StreamReader, writer: Writer) -> None:
        task = asyncio.current_task()
        assert task is not None
        self.tasks.add(task)
        self.connections += 1
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            request_line, *lines = head.decode("latin-1").split("\r\n")
            path = request_line.split(" ")[1]
            headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines if line)}
            self.requests.append((path, headers))
            await self.route(path, writer)
            await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError, ssl.SSLError):
            pass
        finally:
            writer.close()

    async def route(self, path: str, writer: Writer) -> None:
        if path == "/image":
            respond(writer, 200, PAYLOAD, {"Content-Length": str(len(PAYLOAD))})
        elif path.startswith("/chunked/"):  # /chunked/<n>: n bytes, chunked, no Content-Length
            respond(writer, 200, b"", {"Transfer-Encoding": "chunked"})
            await send_chunks(writer, bytes(int(path.rsplit("/", 1)[1])))
            writer.write(b"0\r\n\r\n")
        elif path.startswith("/endless/"):  # /endless/<n>: n bytes, chunked, then never ends
            respond(writer, 200, b"", {"Transfer-Encoding": "chunked"})
            await send_chunks(writer, bytes(int(path.rsplit("/", 1)[1])))
            await self.stop.wait()
        elif path == "/declared-huge":  # claims a gigabyte, sends a little, then stalls
            respond(writer, 200, b"tiny", {"Content-Length": str(10**9)})
            await writer.drain()
            await self.stop.wait()
        elif path == "/missing":
            respond(writer, 404, b"not here", {"Content-Length": "8"})
        elif path == "/silent":  # accepts and never answers
            await self.stop.wait()
        elif path == "/drip":  # one byte every 50 ms, forever: no single read times out
            respond(writer, 200, b"", {"Transfer-Encoding": "chunked"})
            while not self.stop.is_set():
                writer.write(b"1\r\nx\r\n")
                await writer.drain()
                await asyncio.sleep(0.05)
        elif path.startswith("/redirect/"):  # /redirect/<n>: n + 1 relative redirects in all, then /image
            left = int(path.rsplit("/", 1)[1])
            location = f"/redirect/{left - 1}" if left > 0 else "/image"
            respond(writer, 302, b"", {"Location": location, "Content-Length": "0"})
        else:
            respond(writer, 500, b"", {"Content-Length": "0"})

    def url(self, path: str, host: str = "127.0.0.1", scheme: str = "http") -> str:
        return f"{scheme}://{host}:{self.port}{path}"


def respond(writer: Writer, status: int, body: bytes, headers: dict[str, str]) -> None:
    lines = [f"HTTP/1.1 {status} X", "Connection: close", *(f"{k}: {v}" for k, v in headers.items())]
    writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + body)


async def send_chunks(writer: Writer, data: bytes, size: int = 512) -> None:
    for start in range(0, len(data), size):
        piece = data[start : start + size]
        writer.write(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
        await writer.drain()


async def serve(tls: ssl.SSLContext | None = None) -> AsyncIterator[LocalServer]:
    local = LocalServer()
    server = await asyncio.start_server(local.handle, "127.0.0.1", 0, ssl=tls)
    local.port = server.sockets[0].getsockname()[1]
    try:
        yield local
    finally:
        local.stop.set()
        server.close()
        await asyncio.gather(*local.tasks, return_exceptions=True)
        await server.wait_closed()


@pytest.fixture
async def local() -> AsyncIterator[LocalServer]:
    async for server in serve():
        yield server


# --- refused before anything is sent --------------------------------------------------------------------------------

FORBIDDEN = [
    ("127.0.0.1", "loopback"),
    ("127.8.9.10", "loopback"),
    ("::1", "loopback"),
    ("10.0.0.1", "private"),
    ("172.16.0.1", "private"),
    ("172.31.255.254", "private"),
    ("192.168.1.1", "private"),
    ("fc00::1", "private"),
    ("fd12:3456::1", "private"),
    ("169.254.169.254", "cloud metadata"),
    ("fd00:ec2::254", "cloud metadata"),
    ("169.254.1.1", "link-local"),
    ("fe80::1", "link-local"),
    ("::ffff:10.0.0.1", "private"),
    ("::ffff:127.0.0.1", "loopback"),
    ("::ffff:169.254.169.254", "cloud metadata"),
    ("64:ff9b::a00:1", "private"),  # NAT64 of 10.0.0.1
    ("64:ff9b::7f00:1", "loopback"),  # NAT64 of 127.0.0.1
    ("2002:a00:1::1", "private"),  # 6to4 of 10.0.0.1
    ("2001::1", "private"),  # Teredo
    ("::7f00:1", "reserved"),  # deprecated IPv4-compatible ::127.0.0.1
    ("100.64.0.1", "shared"),
    ("0.0.0.0", "unspecified"),
    ("::", "unspecified"),
    ("224.0.0.1", "multicast"),
    ("ff02::1", "multicast"),
    ("240.0.0.1", "reserved"),
    ("255.255.255.255", "reserved"),
    ("192.0.2.1", "private"),  # documentation range: Python counts it as private
    ("198.18.0.1", "private"),  # benchmarking
    ("2001:db8::1", "private"),
]


def literal_url(address: str) -> str:
    return f"http://[{address}]/a.png" if ":" in address else f"http://{address}/a.png"


@pytest.mark.parametrize(("address", "kind"), FORBIDDEN)
async def test_an_ip_literal_of_each_forbidden_class_is_refused_unsent(address: str, kind: str) -> None:
    transport, resolver = NoNetwork(), StubResolver({})
    with pytest.raises(UrlForbidden, match=rf"^image_url: the URL's host is (a|an) {kind}") as caught:
        await fetch_url(literal_url(address), "image_url", POLICY, resolver=resolver, transport=transport)
    assert transport.requests == [] and resolver.calls == []
    assert caught.value.code == "url_forbidden"


@pytest.mark.parametrize(("address", "kind"), FORBIDDEN)
async def test_a_name_resolving_to_each_forbidden_class_is_refused_unsent(address: str, kind: str) -> None:
    transport, resolver = NoNetwork(), StubResolver({"images.example": [address]})
    with pytest.raises(UrlForbidden, match=rf"^image_url: the URL's host resolves to (a|an) {kind}") as caught:
        await fetch_url("https://images.example/a.png", "image_url", POLICY, resolver=resolver, transport=transport)
    assert transport.requests == [] and resolver.calls == [("images.example", 443)]
    assert address not in caught.value.message


async def test_a_name_with_one_private_address_among_public_ones_is_refused() -> None:
    transport = NoNetwork()
    resolver = StubResolver({"images.example": [PUBLIC_V4, PUBLIC_V6, "192.168.7.7", "8.8.8.8"]})
    with pytest.raises(UrlForbidden, match="resolves to a private address") as caught:
        await fetch_url("http://images.example/", "scene_image_url", POLICY, resolver=resolver, transport=transport)
    assert transport.requests == []
    assert caught.value.message.startswith("scene_image_url: ") and "192.168" not in caught.value.message


@pytest.mark.parametrize("host", ["metadata.google.internal", "METADATA.google.internal.", "metadata.goog"])
async def test_metadata_host_names_are_refused_without_resolving(host: str) -> None:
    transport, resolver = NoNetwork(), StubResolver({host: [PUBLIC_V4]})
    with pytest.raises(UrlForbidden, match="metadata"):
        await fetch_url(
            f"http://{host}/computeMetadata/v1/", "image_url", POLICY, resolver=resolver, transport=transport
        )
    assert transport.requests == [] and resolver.calls == []


@pytest.mark.parametrize("host", ["2130706433", "0x7f.1", "127.1", "017700000001"])
async def test_odd_spellings_of_loopback_are_caught_by_the_default_resolver(host: str) -> None:
    # Numeric host names are parsed by getaddrinfo itself: no DNS query leaves the machine.
    transport = NoNetwork()
    with pytest.raises(UrlForbidden, match="resolves to a loopback address"):
        await fetch_url(f"http://{host}/", "image_url", POLICY, transport=transport)
    assert transport.requests == []


@pytest.mark.parametrize(
    ("url", "match"),
    [
        ("file:///etc/passwd", "only http and https URLs can be fetched, not scheme 'file'"),
        ("ftp://images.example/a.png", "not scheme 'ftp'"),
        ("gopher://images.example:70/_GET", "not scheme 'gopher'"),
        ("/relative/a.png", "not scheme 'none'"),
        ("http://user:pw@images.example/a.png", "user name or password"),
        ("https://user@images.example/a.png", "user name or password"),
        ("http://images.example:25/a.png", "port 25 is not allowed"),
        ("http://images.example:6379/a.png", None),  # a port not on the list passes this check
    ],
)
async def test_schemes_credentials_and_bad_ports_are_refused(url: str, match: str | None) -> None:
    transport, resolver = NoNetwork(), StubResolver({"images.example": ["10.0.0.1"]})
    with pytest.raises(UrlForbidden, match=match or "resolves to a private address"):
        await fetch_url(url, "image_url", POLICY, resolver=resolver, transport=transport)
    assert transport.requests == []


@pytest.mark.parametrize("url", ["http://", "http://images.example:99999/", "http://[::1/"])
async def test_malformed_urls_are_invalid_requests(url: str) -> None:
    with pytest.raises(InvalidRequest, match=r"^image_url: "):
        await fetch_url(url, "image_url", POLICY, resolver=StubResolver({}), transport=NoNetwork())


async def test_an_unresolvable_name_fails_to_fetch() -> None:
    with pytest.raises(UrlFetchFailed, match=r"^image_url: the host name 'nowhere.example' could not be resolved$"):
        await fetch_url(
            "http://nowhere.example/", "image_url", POLICY, resolver=StubResolver({}), transport=NoNetwork()
        )


def test_the_policy_refuses_bad_settings() -> None:
    for bad in ({"max_bytes": 0}, {"max_bytes": 1, "read_timeout_s": 0}, {"max_bytes": 1, "max_redirects": -1}):
        with pytest.raises(ValueError):
            FetchPolicy(**bad)  # type: ignore[arg-type]
    for entry in ("10.0.0.0/33", "fe80::zz", ""):
        with pytest.raises(ValueError, match="allowed_hosts"):
            FetchPolicy(max_bytes=1, allowed_hosts=frozenset({entry}))


# --- what is sent: the checked address, the original Host and TLS name ---------------------------------------------


@pytest.mark.parametrize(
    ("url", "resolved", "host_header", "sni"),
    [
        ("https://Images.Example/a.png?x=1", [PUBLIC_V4], "images.example", "images.example"),
        ("https://images.example:8443/a.png", [PUBLIC_V6], "images.example:8443", "images.example"),
        ("http://images.example/a.png", [PUBLIC_V4], "images.example", None),
        ("https://bücher.example/a.png", [PUBLIC_V4], "xn--bcher-kva.example", "xn--bcher-kva.example"),
        (f"https://{PUBLIC_V4}/a.png", [], PUBLIC_V4, None),
    ],
)
async def test_the_request_goes_to_the_checked_address_with_the_original_host(
    url: str, resolved: list[str], host_header: str, sni: str | None
) -> None:
    transport, seen = recording(lambda request: httpx.Response(200, content=PAYLOAD))
    resolver = StubResolver({"images.example": resolved, "xn--bcher-kva.example": resolved})
    assert await fetch_url(url, "image_url", POLICY, resolver=resolver, transport=transport) == PAYLOAD
    [request] = seen
    assert request.url.host == (resolved or [PUBLIC_V4])[0]
    assert request.url.scheme == httpx.URL(url).scheme and request.url.port == httpx.URL(url).port
    assert request.url.raw_path == httpx.URL(url).raw_path
    assert request.headers["host"] == host_header
    assert request.extensions.get("sni_hostname") == sni
    assert request.headers["user-agent"] == "replate/0.1" and request.headers["connection"] == "close"


async def test_public_ipv6_forms_of_public_ipv4_addresses_are_fetched() -> None:
    transport, seen = recording(lambda request: httpx.Response(200, content=PAYLOAD))
    resolver = StubResolver({"images.example": ["::ffff:8.8.8.8", "64:ff9b::808:808"]})
    assert await fetch_url("http://images.example/", "image_url", POLICY, resolver=resolver, transport=transport)
    assert [r.url.host for r in seen] == ["::ffff:808:808"]


async def test_when_one_address_refuses_the_next_checked_one_is_tried() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.host == PUBLIC_V6:
            raise httpx.ConnectError("network unreachable", request=request)
        return httpx.Response(200, content=PAYLOAD)

    transport, seen = recording(handler)
    resolver = StubResolver({"images.example": [PUBLIC_V6, PUBLIC_V4]})
    assert await fetch_url("http://images.example/", "image_url", POLICY, resolver=resolver, transport=transport)
    assert [r.url.host for r in seen] == [PUBLIC_V6, PUBLIC_V4]


async def test_connection_errors_are_translated_without_internal_details() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError(f"[Errno 111] connect to {request.url.host} refused", request=request)

    transport, _ = recording(handler)
    resolver = StubResolver({"images.example": [PUBLIC_V4]})
    with pytest.raises(UrlFetchFailed, match=r"^image_url: could not connect to the server$") as caught:
        await fetch_url("http://images.example/", "image_url", POLICY, resolver=resolver, transport=transport)
    assert isinstance(caught.value.__cause__, httpx.ConnectError)


# --- the operator's allow-list ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("allowed", "resolved", "is_allowed"),
    [
        ({"10.0.0.0/8"}, ["10.1.2.3"], True),
        ({"10.0.0.0/8"}, ["10.1.2.3", "192.168.0.1"], False),
        ({"10.0.0.0/8"}, ["::ffff:10.1.2.3"], True),
        ({"minio.internal"}, ["10.1.2.3", "192.168.0.1"], True),
        ({"MinIO.Internal."}, ["10.1.2.3"], True),
        ({"other.internal"}, ["10.1.2.3"], False),
        ({"fd00::/8"}, ["fd00::5"], True),
        ({"192.168.0.1"}, ["192.168.0.2"], False),
    ],
)
async def test_allowed_hosts_admit_listed_names_and_networks_only(
    allowed: set[str], resolved: list[str], is_allowed: bool
) -> None:
    policy = FetchPolicy(max_bytes=4096, allowed_hosts=frozenset(allowed))
    resolver = StubResolver({"minio.internal": resolved})
    if is_allowed:
        transport, seen = recording(lambda request: httpx.Response(200, content=PAYLOAD))
        assert await fetch_url(
            "http://minio.internal:9000/b/k", "image_url", policy, resolver=resolver, transport=transport
        )
        assert seen[0].headers["host"] == "minio.internal:9000"
    else:
        with pytest.raises(UrlForbidden):
            await fetch_url(
                "http://minio.internal:9000/b/k", "image_url", policy, resolver=resolver, transport=NoNetwork()
            )


# --- redirects --------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("location", "match"),
    [
        ("http://internal.example/x", "the host of a redirect target resolves to a private address"),
        ("http://169.254.169.254/latest/meta-data/", "the host of a redirect target is a cloud metadata address"),
        ("http://[::1]:8080/", "the host of a redirect target is a loopback address"),
        ("file:///etc/passwd", "not scheme 'file'"),
        ("http://user:pw@images.example/b.png", "user name or password"),
        ("http://metadata.google.internal/", "cloud metadata"),
    ],
)
async def test_every_redirect_target_is_checked_before_it_is_requested(location: str, match: str) -> None:
    transport, seen = recording(lambda request: httpx.Response(302, headers={"Location": location}))
    resolver = StubResolver({"images.example": [PUBLIC_V4], "internal.example": ["10.9.8.7"]})
    with pytest.raises(UrlForbidden, match=match):
        await fetch_url("https://images.example/a.png", "image_url", POLICY, resolver=resolver, transport=transport)
    assert len(seen) == 1


async def test_relative_redirects_resolve_against_the_current_url() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/a/one.png":
            return httpx.Response(301, headers={"Location": "two.png?v=2"})
        if request.url.path == "/a/two.png":
            return httpx.Response(307, headers={"Location": "//cdn.example/three.png"})
        return httpx.Response(200, content=PAYLOAD)

    transport, seen = recording(handler)
    resolver = StubResolver({"images.example": [PUBLIC_V4], "cdn.example": ["8.8.4.4"]})
    assert await fetch_url(
        "https://images.example/a/one.png", "image_url", POLICY, resolver=resolver, transport=transport
    )
    hops = [(r.headers["host"], r.url.host, r.url.raw_path, r.extensions.get("sni_hostname")) for r in seen]
    assert hops == [
        ("images.example", PUBLIC_V4, b"/a/one.png", "images.example"),
        ("images.example", PUBLIC_V4, b"/a/two.png?v=2", "images.example"),
        ("cdn.example", "8.8.4.4", b"/three.png", "cdn.example"),
    ]


async def test_a_redirect_without_location_fails() -> None:
    transport, _ = recording(lambda request: httpx.Response(302))
    with pytest.raises(UrlFetchFailed, match="302 without a Location"):
        await fetch_url(f"http://{PUBLIC_V4}/", "image_url", POLICY, transport=transport)


async def test_a_redirect_to_the_local_server_is_refused_unless_allowed(local: LocalServer) -> None:
    """The first hop is mocked; any later hop would go over the real network to our 127.0.0.1 server."""
    real = httpx.AsyncHTTPTransport()

    class FirstHopMocked(httpx.AsyncBaseTransport):
        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            if request.url.host == PUBLIC_V4:
                return httpx.Response(302, headers={"Location": local.url("/image")})
            return await real.handle_async_request(request)

    resolver = StubResolver({"images.example": [PUBLIC_V4]})
    with pytest.raises(UrlForbidden, match="redirect target is a loopback address"):
        await fetch_url("http://images.example/", "image_url", POLICY, resolver=resolver, transport=FirstHopMocked())
    assert local.connections == 0

    allowed = FetchPolicy(max_bytes=4096, allowed_hosts=frozenset({"127.0.0.1"}))
    body = await fetch_url(
        "http://images.example/", "image_url", allowed, resolver=resolver, transport=FirstHopMocked()
    )
    assert body == PAYLOAD and local.connections == 1
    await real.aclose()


# --- against a real server on 127.0.0.1 ----------------------------------------------------------------------------


async def test_a_local_server_is_refused_by_default_and_fetched_when_allowed(local: LocalServer) -> None:
    with pytest.raises(UrlForbidden, match="loopback"):
        await fetch_url(local.url("/image"), "image_url", POLICY)
    assert local.connections == 0
    assert await fetch_url(local.url("/image"), "image_url", LOCAL) == PAYLOAD
    [(path, headers)] = local.requests
    assert path == "/image" and headers["host"] == f"127.0.0.1:{local.port}" and headers["user-agent"] == "replate/0.1"


async def test_a_name_is_connected_to_at_its_checked_address_and_sent_as_host(local: LocalServer) -> None:
    resolver = StubResolver({"images.example": ["127.0.0.1"]})
    policy = FetchPolicy(max_bytes=4096, allowed_hosts=frozenset({"127.0.0.0/8"}))
    assert (
        await fetch_url(local.url("/image", host="images.example"), "image_url", policy, resolver=resolver) == PAYLOAD
    )
    assert local.requests[0][1]["host"] == f"images.example:{local.port}"


async def test_bodies_up_to_the_cap_are_fetched_with_or_without_content_length(local: LocalServer) -> None:
    assert await fetch_url(local.url("/chunked/4096"), "image_url", LOCAL) == bytes(4096)
    assert await fetch_url(local.url("/chunked/0"), "image_url", LOCAL) == b""


@pytest.mark.parametrize("path", ["/declared-huge", "/endless/4097", "/endless/100000"])
async def test_a_body_over_the_cap_is_abandoned_as_soon_as_it_is_known(local: LocalServer, path: str) -> None:
    started = time.monotonic()
    async with asyncio.timeout(1):  # a guard: both servers stall after sending, so waiting for more would hang
        with pytest.raises(ImageTooLarge, match=r"^image_url: the image at this URL is larger than the limit of 4096"):
            await fetch_url(local.url(path), "image_url", LOCAL)
    assert time.monotonic() - started < 1.0


async def test_a_non_2xx_answer_fails_and_names_the_status(local: LocalServer) -> None:
    with pytest.raises(UrlFetchFailed, match=r"^image_url: the server answered 404$"):
        await fetch_url(local.url("/missing"), "image_url", LOCAL)


async def test_a_silent_server_fails_within_the_read_timeout(local: LocalServer) -> None:
    policy = FetchPolicy(max_bytes=4096, read_timeout_s=0.3, allowed_hosts=frozenset({"127.0.0.1"}))
    started = time.monotonic()
    async with asyncio.timeout(2):  # a guard: a broken timeout fails here instead of hanging
        with pytest.raises(UrlFetchFailed, match=r"^image_url: "):
            await fetch_url(local.url("/silent"), "image_url", policy)
    assert time.monotonic() - started < 1.0


async def test_a_dripping_server_fails_within_the_whole_fetch_deadline(local: LocalServer) -> None:
    policy = FetchPolicy(max_bytes=4096, read_timeout_s=0.4, allowed_hosts=frozenset({"127.0.0.1"}))
    started = time.monotonic()
    async with asyncio.timeout(2):  # a guard: without the whole-fetch deadline the drip would never end
        with pytest.raises(UrlFetchFailed, match=r"^image_url: the image was not fetched within 0.4 s$"):
            await fetch_url(local.url("/drip"), "image_url", policy)
    assert 0.35 < time.monotonic() - started < 1.0


async def test_redirects_are_followed_up_to_the_limit(local: LocalServer) -> None:
    assert await fetch_url(local.url("/redirect/4"), "image_url", LOCAL) == PAYLOAD  # 5 redirects
    assert [path for path, _ in local.requests] == [f"/redirect/{n}" for n in range(4, -1, -1)] + ["/image"]
    with pytest.raises(UrlFetchFailed, match=r"^image_url: the URL redirected more than 5 times$"):
        await fetch_url(local.url("/redirect/5"), "image_url", LOCAL)  # 6 redirects
    assert len(local.requests) == 6 + 6
    no_redirects = FetchPolicy(max_bytes=4096, max_redirects=0, allowed_hosts=frozenset({"127.0.0.1"}))
    with pytest.raises(UrlFetchFailed, match="more than 0 times"):
        await fetch_url(local.url("/redirect/0"), "image_url", no_redirects)


# --- https: the original name is the SNI and the certificate's name -------------------------------------------------


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for images.example only (no IP address in it)."""
    if shutil.which("openssl") is None:
        pytest.skip("needs the openssl command to make a test certificate")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    command = [
        *("openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"),
        *("-keyout", str(key), "-out", str(cert), "-days", "2", "-subj", "/CN=images.example"),
        *("-addext", "subjectAltName=DNS:images.example"),
    ]
    subprocess.run(command, check=True, capture_output=True)
    return cert, key


async def test_https_verifies_the_original_name_while_connecting_to_the_checked_address(
    certificate: tuple[Path, Path],
) -> None:
    cert, key = certificate
    server_tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_tls.load_cert_chain(cert, key)
    served: list[LocalServer] = []

    def record_sni(sock: ssl.SSLObject, name: str | None, context: ssl.SSLContext) -> None:
        served[0].sni_names.append(name)

    server_tls.sni_callback = record_sni  # type: ignore[assignment]
    resolver = StubResolver({"images.example": ["127.0.0.1"], "other.example": ["127.0.0.1"]})
    async for local in serve(server_tls):
        served.append(local)
        client_tls = ssl.create_default_context(cafile=str(cert))
        async with httpx.AsyncHTTPTransport(verify=client_tls) as transport:

            async def fetch(url: str) -> bytes:
                return await fetch_url(url, "image_url", LOCAL, resolver=resolver, transport=transport)

            assert await fetch(local.url("/image", host="images.example", scheme="https")) == PAYLOAD
            assert local.sni_names == ["images.example"]
            assert local.requests[0][1]["host"] == f"images.example:{local.port}"
            # The same address under a name the certificate does not cover: verification must fail.
            with pytest.raises(UrlFetchFailed, match="TLS handshake failed"):
                await fetch(local.url("/image", host="other.example", scheme="https"))
            assert local.sni_names[-1] == "other.example"
