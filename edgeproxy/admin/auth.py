"""Who may operate the proxy: bearer-token checks and the rule for where the admin API may listen."""

from __future__ import annotations

import hmac
import ipaddress


class AdminBindError(ValueError):
    """Refusal to start the admin API on an address that would expose it without a token."""


def check_admin_bind(host: str, token: str | None) -> None:
    """Refuse a non-loopback admin address without a token: purge and reload must not be open to
    the network. Raises :class:`AdminBindError` saying how to fix the command line."""
    if token:
        return
    if _is_loopback(host):
        return
    raise AdminBindError(
        f"refusing to serve the admin API on {host!r} without a token: anyone who can reach it could "
        "purge the cache or reload policies. Pass --admin-token (or bind --admin to 127.0.0.1)."
    )


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def bearer_matches(authorization: str | None, token: str) -> bool:
    """RFC 6750 §2.1 ``Authorization: Bearer <token>``, compared in constant time so response
    timing does not reveal how much of a guess was right."""
    if not authorization or not token:
        return False
    scheme, _, credentials = authorization.partition(" ")
    if scheme.lower() != "bearer":
        return False
    # surrogateescape: aiohttp keeps non-UTF-8 header bytes as surrogates; they simply mismatch.
    return hmac.compare_digest(credentials.strip().encode("utf-8", "surrogateescape"), token.encode())
