"""What a peer may be called: AE titles (PS3.5 AE: 1-16 characters of the default repertoire, no
backslash or control character, not only spaces) and hosts (an IP address, a network in CIDR form,
or a name that resolves)."""

from __future__ import annotations

import ipaddress
import socket


def check_ae_title(value: str) -> str:
    """``value`` if it is a valid AE title, else ValueError saying what is wrong."""
    if not 0 < len(value) <= 16:
        raise ValueError(f"an AE title is 1 to 16 characters; {value!r} has {len(value)}")
    if "\\" in value or not all(0x20 <= ord(c) <= 0x7E for c in value):
        raise ValueError(
            f"an AE title has no backslash and only printable ASCII characters; {value!r} does not"
        )
    if not value.strip():
        raise ValueError("an AE title cannot be only spaces")
    return value


def check_host(value: str) -> str:
    """``value`` if it is an IP address, a CIDR network or a name that resolves, else ValueError."""
    try:
        if "/" in value:
            ipaddress.ip_network(value, strict=False)
        else:
            ipaddress.ip_address(value)
        return value
    except ValueError:
        if "/" in value:
            raise ValueError(f"{value!r} is not a network in CIDR form (e.g. 10.0.1.0/24)") from None
    try:
        socket.getaddrinfo(value, None)
    except (OSError, UnicodeError):
        raise ValueError(
            f"{value!r} is not an IP address, a CIDR network or a name that resolves here"
        ) from None
    return value


def check_port(value: int) -> int:
    if not 1 <= value <= 65535:
        raise ValueError(f"a port is 1 to 65535, not {value}")
    return value
