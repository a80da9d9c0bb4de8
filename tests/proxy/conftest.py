"""The proxy suite uses the shared fixtures (tests/support/fixtures.py): a programmable origin
on port 0, the real proxy in front of it, and a client.

``client`` talks to a proxy whose origin is ``origin``; tests that need another origin (a raw
byte-level one, a dead port, a fault proxy) start their own proxy with ``start_proxy`` and
connect with ``tests.proxy.harness.proxy_client``.
"""

from __future__ import annotations

from tests.support.fixtures import StartProxy  # noqa: F401 (re-exported for the tests)

SMALL_OBJECTS_POLICY = """
policies:
  small:
    match:
      hosts: ["*"]
      paths: ["/*"]
    store:
      max_object_size: 16KB
"""
"""A policy file under which bodies above 16 KiB stream through unstored."""
