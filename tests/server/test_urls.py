"""Callback URLs reach the public internet only, unless the operator allows private addresses.

Names are resolved through a stand-in for `socket.getaddrinfo`, so no test asks a real DNS server.
"""

from __future__ import annotations

import socket
from typing import Any

import pytest

from veil.core.errors import InvalidInputError
from veil.core.safety.urls import check_public_url


@pytest.fixture
def dns(monkeypatch: pytest.MonkeyPatch) -> dict[str, list[str]]:
    """Host name -> the addresses it resolves to; a name not in it does not resolve."""
    table: dict[str, list[str]] = {}

    def getaddrinfo(host: str, port: int, *args: Any, **kwargs: Any) -> list[tuple[Any, ...]]:
        if host not in table:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port)) for address in table[host]]

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return table


def refusal(url: str, allow_private: bool = False) -> str:
    with pytest.raises(InvalidInputError) as caught:
        check_public_url(url, allow_private)
    assert list(caught.value.errors) == ["callback_url"]
    return caught.value.errors["callback_url"][0]


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:9000/hook",
        "http://10.1.2.3/hook",
        "http://192.168.0.10/hook",
        "http://172.16.5.4/hook",
        "http://169.254.169.254/latest/meta-data",
        "http://100.64.0.1/",
        "http://0.0.0.0/",
        "http://224.0.0.1/",
        "http://240.0.0.1/",
        "http://[::1]/hook",
        "http://[fe80::1]/hook",
        "http://[fc00::1]/hook",
        "http://[::ffff:10.0.0.1]/hook",
        "http://[::ffff:127.0.0.1]/hook",
    ],
)
def test_addresses_outside_the_public_internet_are_refused(url: str) -> None:
    assert "not a public address" in refusal(url)


@pytest.mark.parametrize("url", ["http://93.184.216.34/hook", "https://[2606:4700:4700::1111]:8443/x"])
def test_public_addresses_are_accepted(url: str) -> None:
    check_public_url(url, allow_private=False)


def test_a_name_is_refused_when_any_of_its_addresses_is_private(dns: dict[str, list[str]]) -> None:
    dns["hooks.example.com"] = ["93.184.216.34", "10.0.0.7"]

    assert refusal("https://hooks.example.com/done") == (
        "hooks.example.com (10.0.0.7) is not a public address; callbacks go to the public internet only "
        "(an operator can allow private addresses)."
    )


def test_a_name_with_only_public_addresses_is_accepted(dns: dict[str, list[str]]) -> None:
    dns["hooks.example.com"] = ["93.184.216.34"]

    check_public_url("https://hooks.example.com/done", allow_private=False)


def test_a_name_that_does_not_resolve_is_refused(dns: dict[str, list[str]]) -> None:
    assert "does not resolve" in refusal("https://nowhere.example/hook")


def test_localhost_is_refused(dns: dict[str, list[str]]) -> None:
    dns["localhost"] = ["127.0.0.1"]

    assert "localhost (127.0.0.1) is not a public address" in refusal("http://localhost:8000/hook")


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("ftp://93.184.216.34/file", "Only http and https"),
        ("file:///etc/passwd", "Only http and https"),
        ("93.184.216.34/hook", "Only http and https"),
        ("http:///hook", "names no host"),
        ("http://93.184.216.34:99999/", "not a valid URL"),
    ],
)
def test_malformed_urls_are_refused_even_when_private_addresses_are_allowed(url: str, message: str) -> None:
    assert message in refusal(url, allow_private=True)


def test_the_operator_can_allow_private_addresses(dns: dict[str, list[str]]) -> None:
    check_public_url("http://127.0.0.1:9000/hook", allow_private=True)
    check_public_url("http://receiver.internal/hook", allow_private=True)  # not resolved at all
