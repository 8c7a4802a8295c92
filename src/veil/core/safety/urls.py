"""Callback URLs may only reach the public internet, so a client cannot make the server call into the
machine's own network (SSRF).

The server checks a URL when a task is submitted; the worker checks it again just before each delivery,
because what a name resolves to can change in between (DNS rebinding).
"""

from __future__ import annotations

import ipaddress
import socket
from typing import NoReturn
from urllib.parse import urlsplit

from veil.core.errors import InvalidInputError

__all__ = ["check_public_url"]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_DEFAULT_PORTS = {"http": 80, "https": 443}


def check_public_url(url: str, allow_private: bool) -> None:
    """Refuses `url` unless it is http(s) with a host whose every address is public.

    Args:
        url: the callback URL a client gave.
        allow_private: the operator's setting: when true, loopback and private addresses are allowed
            (the URL must still be http(s) with a host, but the name is not resolved).

    Raises:
        InvalidInputError: under `callback_url`, saying what is wrong; also when the name does not resolve.
    """
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        _refuse(f"{url!r} is not a valid URL: {exc}.")
    if parts.scheme not in _DEFAULT_PORTS:
        _refuse(f"Only http and https callback URLs are accepted, not {parts.scheme or 'no scheme'!r}.")
    if not parts.hostname:
        _refuse(f"{url!r} names no host.")
    if allow_private:
        return
    for address in _resolve(parts.hostname, port or _DEFAULT_PORTS[parts.scheme]):
        if not _is_public(address):
            named = parts.hostname if parts.hostname == str(address) else f"{parts.hostname} ({address})"
            _refuse(
                f"{named} is not a public address; callbacks go to the public internet only "
                "(an operator can allow private addresses)."
            )


def _resolve(host: str, port: int) -> list[IPAddress]:
    try:
        return [ipaddress.ip_address(host)]
    except ValueError:
        pass  # a name, not an address literal
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as exc:
        _refuse(f"The callback host {host} does not resolve: {exc}.")
    # IPv6 link-local answers carry a zone ("fe80::1%eth0"), which ip_address does not parse.
    return [ipaddress.ip_address(str(info[4][0]).split("%", 1)[0]) for info in infos]


def _is_public(address: IPAddress) -> bool:
    if isinstance(address, ipaddress.IPv6Address):
        embedded = address.ipv4_mapped or address.sixtofour
        if embedded is not None:
            return _is_public(embedded)
    # is_global alone lets some multicast and reserved ranges through; refuse those explicitly.
    return address.is_global and not (
        address.is_multicast
        or address.is_reserved
        or address.is_loopback
        or address.is_link_local
        or address.is_unspecified
    )


def _refuse(message: str) -> NoReturn:
    raise InvalidInputError({"callback_url": [message]})
