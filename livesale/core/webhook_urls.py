"""Which robot webhook URLs livesale may call, and where exactly it connects.

A robot URL is typed in by a host, so without care it is a way to make the
server call itself or the private network behind it (SSRF): ``http://127.0.0.1:6379``,
``http://169.254.169.254/`` (a cloud's metadata service), a name that resolves
to ``10.0.0.5``. The rules:

- ``https`` only, unless ``LIVESALE_WEBHOOK_ALLOW_HTTP=1``;
- no user name or password in the URL, no fragment, at most :data:`MAX_URL_LENGTH` characters;
- the host, whether an IP literal or a name, must resolve (``getaddrinfo``) and *every*
  address must be public, unless ``LIVESALE_WEBHOOK_ALLOW_PRIVATE=1``: loopback,
  private, link-local, CGNAT (100.64/10), reserved, multicast, unspecified and
  site-local addresses are refused, as are IPv6 addresses that carry one of those
  IPv4 addresses (``::ffff:127.0.0.1``, 6to4, Teredo, NAT64).

:func:`check_robot_url` is what the API calls when a robot is added. The sender
calls :func:`resolve_robot_url` before every request and connects to one of the
addresses it returns, never to a fresh lookup of the name: a DNS answer that
changes between the check and the connection (DNS rebinding) cannot send the
request elsewhere. The sender never follows redirects (a 3xx is an answer like
any other), so a public URL cannot bounce the request to a private one.
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import SplitResult, urlsplit

from livesale.core.errors import InvalidInput

#: The longest URL accepted (the ``robots.url`` column holds 2000).
MAX_URL_LENGTH = 2000
_FIELD = "url"
_NAT64 = ipaddress.ip_network("64:ff9b::/96")

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass(frozen=True)
class WebhookTarget:
    """A checked URL and the addresses it may be sent to (connect to these, not to ``host``)."""

    url: str
    scheme: str  # "https" or "http"
    host: str  # as in the URL, for the Host header and TLS server name (IDNA-encoded)
    port: int
    #: The path with its query, as sent in the request line.
    target: str
    addresses: tuple[str, ...]


def check_robot_url(url: str, *, allow_http: bool, allow_private: bool) -> None:
    """Refuse (``InvalidInput`` on field ``url``) a URL livesale must not call.

    A name that cannot be looked up now is accepted: there is no address to refuse, a DNS hiccup
    must not stop a host from adding the group's robot, and the sender checks the name again at
    every attempt (its delivery log then says it cannot be found). With ``allow_private`` every
    address is allowed, so the name is not looked up at all.
    """
    parts = _parse(url, allow_http=allow_http)
    if not allow_private:
        host = _ascii_host(parts.hostname or "")
        try:
            addresses = _resolve(host, parts.port or 443)
        except InvalidInput as exc:
            if exc.code == "url_unresolvable":
                return
            raise
        _refuse_private(host, addresses)


def resolve_robot_url(url: str, *, allow_http: bool, allow_private: bool) -> WebhookTarget:
    """Check ``url`` as :func:`check_robot_url` does and return where to connect.

    Resolves the host now: the caller connects to one of ``addresses``, each of
    which passed the check, and sends ``Host: host`` (and, for https, ``host`` as
    the TLS server name, so the certificate is still checked against the name).
    """
    parts = _parse(url, allow_http=allow_http)
    host = _ascii_host(parts.hostname or "")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    addresses = _resolve(host, port)
    if not allow_private:
        _refuse_private(host, addresses)
    target = parts.path or "/"
    if parts.query:
        target += "?" + parts.query
    return WebhookTarget(url=url, scheme=parts.scheme, host=host, port=port, target=target,
                         addresses=tuple(str(a) for a in addresses))


def is_public_address(address: IPAddress) -> bool:
    """Whether livesale may send a robot's message to ``address`` without ALLOW_PRIVATE."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(address)
        if embedded is not None:
            return is_public_address(embedded)
        if address.is_site_local:  # fec0::/10, deprecated but still routed inside some networks
            return False
    # ``is_global`` is False for every range of IANA's special-purpose registries: loopback,
    # private (10/8, 172.16/12, 192.168/16, fc00::/7), link-local (169.254/16, fe80::/10),
    # CGNAT (100.64/10), unspecified, reserved (240/4), broadcast, documentation, benchmarking…
    # It counts multicast as global: a robot is never a multicast group.
    return address.is_global and not address.is_multicast


def _refuse_private(host: str, addresses: list[IPAddress]) -> None:
    for address in addresses:
        if not is_public_address(address):
            where = host if host == str(address) else f"{host} ({address})"
            raise InvalidInput(
                f"{where} is a private, loopback or otherwise non-public address; "
                "robots must be reachable on the internet",
                field=_FIELD, code="url_private",
            )


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address stands for (6to4, Teredo, NAT64), if any. (``is_global`` itself
    judges an IPv4-mapped address, ``::ffff:10.0.0.1``, by its IPv4 address.)"""
    if address.sixtofour is not None:
        return address.sixtofour
    if address.teredo is not None:
        return address.teredo[1]
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def _parse(url: str, *, allow_http: bool) -> SplitResult:
    if not isinstance(url, str) or not url.strip():
        raise InvalidInput("give the robot's webhook URL", field=_FIELD, code="url_missing")
    if len(url) > MAX_URL_LENGTH:
        raise InvalidInput(f"the URL is longer than {MAX_URL_LENGTH} characters", field=_FIELD, code="url_too_long")
    if any(ch.isspace() or ord(ch) < 0x20 or ord(ch) == 0x7F for ch in url):
        raise InvalidInput("the URL must not contain spaces or control characters", field=_FIELD, code="url_invalid")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port out of range or not a number
    except ValueError:
        raise InvalidInput("this is not a valid URL", field=_FIELD, code="url_invalid") from None
    scheme = parts.scheme.lower()
    if scheme == "http" and not allow_http:
        raise InvalidInput("the URL must start with https://", field=_FIELD, code="url_not_https")
    if scheme not in {"https", "http"}:
        raise InvalidInput("the URL must start with https://", field=_FIELD, code="url_not_https")
    if parts.username is not None or parts.password is not None or "@" in parts.netloc:
        raise InvalidInput("the URL must not contain a user name or password", field=_FIELD,
                           code="url_credentials")
    if not parts.hostname:
        raise InvalidInput("the URL has no host", field=_FIELD, code="url_invalid")
    if parts.fragment:
        raise InvalidInput("the URL must not contain a #fragment", field=_FIELD, code="url_invalid")
    return parts._replace(scheme=scheme)


def _ascii_host(host: str) -> str:
    try:
        ipaddress.ip_address(host)
        return host
    except ValueError:
        pass
    try:
        return host.encode("idna").decode("ascii").lower()
    except UnicodeError:
        raise InvalidInput("the URL's host name is not valid", field=_FIELD, code="url_invalid") from None


def _resolve(host: str, port: int) -> list[IPAddress]:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
    except (socket.gaierror, UnicodeError, OSError):
        raise InvalidInput(f"the host {host} cannot be found", field=_FIELD, code="url_unresolvable") from None
    addresses: list[IPAddress] = []
    for family, _type, _proto, _canon, sockaddr in infos:
        if family not in (socket.AF_INET, socket.AF_INET6):
            continue
        # Drop an IPv6 zone ("fe80::1%eth0"): link-local either way, refused below.
        address = ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])
        if address not in addresses:
            addresses.append(address)
    if not addresses:
        raise InvalidInput(f"the host {host} cannot be found", field=_FIELD, code="url_unresolvable")
    return addresses
