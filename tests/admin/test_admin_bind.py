"""The admin API refuses to listen beyond loopback without a token."""

from __future__ import annotations

import pytest

from edgeproxy.admin import AdminBindError, check_admin_bind
from edgeproxy.admin.auth import bearer_matches


@pytest.mark.parametrize("host", ["127.0.0.1", "127.8.9.1", "::1", "[::1]", "localhost"])
def test_loopback_may_run_without_a_token(host: str) -> None:
    check_admin_bind(host, None)


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "10.0.0.5", "admin.example.com", ""])
def test_anything_else_needs_a_token(host: str) -> None:
    with pytest.raises(AdminBindError, match="--admin-token"):
        check_admin_bind(host, None)
    with pytest.raises(AdminBindError):
        check_admin_bind(host, "")
    check_admin_bind(host, "t0ken")


@pytest.mark.parametrize(
    ("header", "ok"),
    [("Bearer t0ken", True), ("bearer t0ken", True), ("Bearer t0ke", False), ("Bearer ", False),
     ("Token t0ken", False), (None, False), ("Bearer t0ken\u00e9", False)],
)
def test_bearer_header_matching(header: str | None, ok: bool) -> None:
    assert bearer_matches(header, "t0ken") is ok


def test_an_empty_configured_token_never_matches() -> None:
    assert bearer_matches("Bearer ", "") is False
