"""Fetch an image URL given by an API client without letting the client reach inside our network (SSRF).

Every hop (the client's URL and each redirect target) goes through the same checks before anything is sent:

- scheme `http` or `https`, no `user:password@`, a port in 1..65535 that is not on the WHATWG Fetch "bad port" list
  (SMTP, IRC, SSH and the like: the list browsers refuse, so we cannot be used to talk to those services);
- the host is resolved here (the `resolver`), and EVERY address it resolves to must be public: no loopback,
  private (RFC 1918, RFC 4193), link-local, multicast, unspecified, reserved, shared (100.64.0.0/10), non-global
  or cloud metadata address. IPv6 forms that embed an IPv4 address (IPv4-mapped `::ffff:a.b.c.d`, NAT64
  `64:ff9b::/96`, 6to4 `2002::/16`) are judged by that IPv4 address; Teredo (`2001::/32`) is refused as non-global.
  Metadata host names (`metadata.google.internal`, ...) are refused by name;
- the request then goes to a checked address, never to the name again, so DNS rebinding cannot swap the target
  between check and connect: the URL's host becomes the IP, the `Host` header keeps the original host, and for
  https the original name is the TLS SNI and the name the certificate is verified against (httpcore's
  `sni_hostname` request extension). If connecting to one address fails, the next checked one is tried.

`FetchPolicy.allowed_hosts` is the operator's way out: a listed host name may resolve to anything, and an address
inside a listed network passes. Redirects are followed by hand, at most `max_redirects`. The body is streamed and
abandoned as soon as it passes `max_bytes`. `read_timeout_s` bounds each read and also the whole fetch (resolution,
every hop and the body), so a server dripping one byte at a time cannot hold a request open.

Each request asks for `Connection: close`, so no connection is ever reused: a transport passed in (for instance
one made once in the app's lifespan, which saves building a TLS context per fetch) may be shared by all fetches.
Environment proxies are never used; the TLS context honours SSL_CERT_FILE / SSL_CERT_DIR.

Error messages name the field and the class of a refused address, never the address a name resolved to.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import socket
import ssl
from collections.abc import Awaitable, Callable

import anyio
import httpx

from gateway.errors import UrlFetchFailed, UrlForbidden
from replate.errors import ImageTooLarge, InvalidRequest

__all__ = ["USER_AGENT", "FetchPolicy", "Resolver", "fetch_url", "resolve_host"]

USER_AGENT = "replate/0.1"

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
Resolver = Callable[[str, int], Awaitable[list[str]]]
"""(host, port) -> the IP address strings the host resolves to; raises OSError when it cannot be resolved."""

_SCHEMES = {"http": 80, "https": 443}
_REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})

# https://fetch.spec.whatwg.org/#bad-port
_BAD_PORTS = frozenset(
    {0, 1, 7, 9, 11, 13, 15, 17, 19, 20, 21, 22, 23, 25, 37, 42, 43, 53, 69, 77, 79, 87, 95, 101, 102, 103, 104}
    | {109, 110, 111, 113, 115, 117, 119, 123, 135, 137, 139, 143, 161, 179, 389, 427, 465, 512, 513, 514, 515}
    | {526, 530, 531, 532, 540, 548, 554, 556, 563, 587, 601, 636, 989, 990, 993, 995, 1719, 1720, 1723, 2049}
    | {3659, 4045, 4190, 5060, 5061, 6000, 6566, 6665, 6666, 6667, 6668, 6669, 6679, 6697, 10080}
)

_METADATA_NAMES = frozenset({"metadata.google.internal", "metadata.goog", "metadata", "instance-data"})
_METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(a)
    for a in (
        "169.254.169.254",  # AWS, GCP, Azure, OpenStack, DigitalOcean, ...
        "169.254.170.2",  # AWS ECS task metadata
        "100.100.100.200",  # Alibaba Cloud
        "fd00:ec2::254",  # AWS IMDS over IPv6
    )
)
_SHARED = ipaddress.IPv4Network("100.64.0.0/10")
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_NAT64_LOCAL = ipaddress.IPv6Network("64:ff9b:1::/48")


@dataclasses.dataclass(frozen=True)
class FetchPolicy:
    """How URL fetching is limited; validated when made, so a bad operator setting fails at startup."""

    max_bytes: int
    """Size cap of the body, enforced from Content-Length up front and while streaming."""
    connect_timeout_s: float = 5.0
    read_timeout_s: float = 15.0
    """Cap on each read, and on the wall time of the whole fetch (resolution, all hops, the body)."""
    max_redirects: int = 5
    allowed_hosts: frozenset[str] = frozenset()
    """Host names ("minio.internal") and CIDR networks ("10.0.0.0/8", "127.0.0.1") that may be private."""

    _allowed_names: frozenset[str] = dataclasses.field(init=False, repr=False, compare=False)
    _allowed_networks: tuple[IPNetwork, ...] = dataclasses.field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.max_bytes <= 0:
            raise ValueError(f"max_bytes must be positive, not {self.max_bytes}")
        if self.connect_timeout_s <= 0 or self.read_timeout_s <= 0:
            raise ValueError("connect_timeout_s and read_timeout_s must be positive")
        if self.max_redirects < 0:
            raise ValueError(f"max_redirects must be 0 or more, not {self.max_redirects}")
        names: set[str] = set()
        networks: list[IPNetwork] = []
        for entry in self.allowed_hosts:
            text = entry.strip().lower()
            try:
                networks.append(ipaddress.ip_network(text, strict=False))
                continue
            except ValueError:
                pass
            if not text or "/" in text or ":" in text:
                raise ValueError(f"allowed_hosts: {entry!r} is neither a host name nor a CIDR network")
            names.add(text.rstrip("."))
        object.__setattr__(self, "_allowed_names", frozenset(names))
        object.__setattr__(self, "_allowed_networks", tuple(networks))


async def resolve_host(host: str, port: int) -> list[str]:
    """The default resolver: the event loop's getaddrinfo, TCP addresses only."""
    infos = await anyio.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


async def fetch_url(
    url: str,
    field: str,
    policy: FetchPolicy,
    *,
    resolver: Resolver | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
) -> bytes:
    """The body of `url` (an http(s) URL from an API client's `field`), fetched under `policy`.

    Raises InvalidRequest (not a URL), UrlForbidden (scheme, credentials, port or a non-public address, also after
    a redirect), ImageTooLarge (over `policy.max_bytes`) or UrlFetchFailed (resolution, connection, timeout, too
    many redirects, a non-2xx answer). `transport` defaults to a fresh httpx.AsyncHTTPTransport closed afterwards;
    one passed in is not closed.
    """
    try:
        start = httpx.URL(url)
    except (httpx.InvalidURL, TypeError) as exc:
        raise InvalidRequest(f"{field}: not a valid URL") from exc
    resolve = resolver or resolve_host
    try:
        with anyio.fail_after(policy.read_timeout_s):
            if transport is not None:
                return await _follow(start, field, policy, resolve, transport)
            async with httpx.AsyncHTTPTransport(retries=0) as own_transport:
                return await _follow(start, field, policy, resolve, own_transport)
    except TimeoutError as exc:
        raise UrlFetchFailed(f"{field}: the image was not fetched within {policy.read_timeout_s:g} s") from exc
    except httpx.HTTPError as exc:
        raise _fetch_failed(exc, field) from exc


async def _follow(
    url: httpx.URL, field: str, policy: FetchPolicy, resolve: Resolver, transport: httpx.AsyncBaseTransport
) -> bytes:
    for hop in range(policy.max_redirects + 1):
        where = "the URL's host" if hop == 0 else "the host of a redirect target"
        addresses = await _checked_addresses(url, field, where, policy, resolve)
        response = await _send(url, addresses, policy, transport)
        try:
            if response.status_code in _REDIRECT_STATUSES:
                url = _redirect_target(url, response, field)
                continue
            if not 200 <= response.status_code < 300:
                raise UrlFetchFailed(f"{field}: the server answered {response.status_code}")
            return await _read_body(response, field, policy)
        finally:
            await response.aclose()
    raise UrlFetchFailed(f"{field}: the URL redirected more than {policy.max_redirects} times")


async def _checked_addresses(
    url: httpx.URL, field: str, where: str, policy: FetchPolicy, resolve: Resolver
) -> list[IPAddress]:
    """The addresses `url` may be fetched from, after the checks in the module docstring; raises otherwise."""
    if url.scheme not in _SCHEMES:
        scheme = url.scheme or "none"
        raise UrlForbidden(f"{field}: only http and https URLs can be fetched, not scheme '{scheme}'")
    if url.userinfo:
        raise UrlForbidden(f"{field}: URLs with a user name or password are not fetched")
    host = url.raw_host.decode("ascii").lower()
    if not host:
        raise InvalidRequest(f"{field}: the URL has no host")
    port = url.port if url.port is not None else _SCHEMES[url.scheme]
    if not 0 < port < 65536:
        raise InvalidRequest(f"{field}: port {port} is out of range")
    if port in _BAD_PORTS:
        raise UrlForbidden(f"{field}: port {port} is not allowed for image URLs")

    name = host.rstrip(".")
    literal = _parse_address(host)
    if literal is not None:
        addresses = [literal]
    else:
        if name in _METADATA_NAMES and name not in policy._allowed_names:
            raise UrlForbidden(f"{field}: {where} is a cloud metadata service")
        try:
            resolved = await resolve(host, port)
        except OSError as exc:
            raise UrlFetchFailed(f"{field}: the host name '{name}' could not be resolved") from exc
        addresses = list(dict.fromkeys(ipaddress.ip_address(a) for a in resolved))
        if not addresses:
            raise UrlFetchFailed(f"{field}: the host name '{name}' could not be resolved")
        if name in policy._allowed_names:
            return addresses

    for address in addresses:
        kind = _forbidden_kind(address)
        if kind is not None and not _in_networks(address, policy._allowed_networks):
            verb = "is" if literal is not None else "resolves to"
            raise UrlForbidden(f"{field}: {where} {verb} {kind}; image URLs must point to public servers")
    return addresses


def _parse_address(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address stands for (IPv4-mapped, NAT64 well-known prefix, 6to4), if any."""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return address.sixtofour


def _forbidden_kind(address: IPAddress) -> str | None:
    """Why `address` may not be fetched from, as words for a message ("a private address"); None if public."""
    if address in _METADATA_ADDRESSES:
        return "a cloud metadata address"
    if isinstance(address, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(address)
        if embedded is not None:
            return _forbidden_kind(embedded)
        if address in _NAT64_LOCAL:
            return "a private address"
    checks = (
        (address.is_loopback, "a loopback address"),
        (address.is_unspecified, "an unspecified address"),
        (address.is_link_local, "a link-local address"),
        (address.is_multicast, "a multicast address"),
        (address in _SHARED, "a shared (carrier-grade NAT) address"),
        (address.is_reserved, "a reserved address"),
        (address.is_private, "a private address"),
        (not address.is_global, "a non-public address"),
    )
    return next((kind for is_kind, kind in checks if is_kind), None)


def _in_networks(address: IPAddress, networks: tuple[IPNetwork, ...]) -> bool:
    candidates: list[IPAddress] = [address]
    if isinstance(address, ipaddress.IPv6Address) and (embedded := _embedded_ipv4(address)) is not None:
        candidates.append(embedded)
    return any(candidate in network for candidate in candidates for network in networks)


async def _send(
    url: httpx.URL, addresses: list[IPAddress], policy: FetchPolicy, transport: httpx.AsyncBaseTransport
) -> httpx.Response:
    """Send GET `url` to the first of `addresses` that accepts a connection; the response body is not read yet."""
    for index, address in enumerate(addresses):
        request = _request_to(url, address, policy)
        try:
            response = await transport.handle_async_request(request)
        except (httpx.ConnectError, httpx.ConnectTimeout):
            if index == len(addresses) - 1:
                raise
            continue
        response.request = request
        return response
    raise AssertionError("unreachable: _checked_addresses never returns an empty list")


def _request_to(url: httpx.URL, address: IPAddress, policy: FetchPolicy) -> httpx.Request:
    """GET `url`, addressed to `address` but naming the original host in `Host` and, for https, in TLS."""
    headers = {
        "Host": url.netloc.decode("ascii"),
        "User-Agent": USER_AGENT,
        "Accept": "image/*, */*;q=0.8",
        "Accept-Encoding": "identity",
        "Connection": "close",
    }
    timeout = httpx.Timeout(policy.read_timeout_s, connect=policy.connect_timeout_s)
    extensions: dict[str, object] = {"timeout": timeout.as_dict()}
    host = url.raw_host.decode("ascii")
    if url.scheme == "https" and _parse_address(host) is None:
        extensions["sni_hostname"] = host.rstrip(".")
    target = url.copy_with(host=str(address).partition("%")[0], fragment=None)
    return httpx.Request("GET", target, headers=headers, extensions=extensions)


def _redirect_target(url: httpx.URL, response: httpx.Response, field: str) -> httpx.URL:
    location = response.headers.get("location")
    if not location:
        raise UrlFetchFailed(f"{field}: the server answered {response.status_code} without a Location header")
    try:
        return url.join(location)
    except httpx.InvalidURL as exc:
        raise UrlFetchFailed(f"{field}: the server redirected to an invalid URL") from exc


async def _read_body(response: httpx.Response, field: str, policy: FetchPolicy) -> bytes:
    declared = response.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > policy.max_bytes:
        raise _too_large(field, policy)
    body = bytearray()
    async for chunk in response.aiter_bytes():
        body += chunk
        if len(body) > policy.max_bytes:
            raise _too_large(field, policy)
    return bytes(body)


def _too_large(field: str, policy: FetchPolicy) -> ImageTooLarge:
    return ImageTooLarge(f"{field}: the image at this URL is larger than the limit of {policy.max_bytes} bytes")


def _fetch_failed(exc: httpx.HTTPError, field: str) -> UrlFetchFailed:
    """The one translation of httpx errors; the message never carries the exception text (it may name an IP)."""
    if isinstance(exc, httpx.TimeoutException):
        return UrlFetchFailed(f"{field}: the server did not answer in time")
    if isinstance(exc, httpx.ConnectError):
        if _caused_by(exc, ssl.SSLError):
            return UrlFetchFailed(f"{field}: the TLS handshake failed (is the certificate valid for the host name?)")
        return UrlFetchFailed(f"{field}: could not connect to the server")
    return UrlFetchFailed(f"{field}: the server's answer could not be read")


def _caused_by(exc: BaseException, kind: type[BaseException]) -> bool:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, kind):
            return True
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return False
