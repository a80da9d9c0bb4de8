"""The cache key of a request under a policy, and the upstream target that goes with it.

Whatever normalization the key applies (dropped, filtered or sorted query parameters) is applied
to the upstream request too: the origin always answers exactly what we keyed, so no difference
between two spellings of a URL can put one answer under another's key (cache poisoning).
The path is never rewritten: it is keyed and forwarded byte-exact, as sent.
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass
from functools import lru_cache
from itertools import chain
from urllib.parse import unquote_plus

from edgeproxy.cache.key import key_hash, key_text
from edgeproxy.cache.message import RequestHead
from edgeproxy.policies.cookies import request_cookies
from edgeproxy.policies.device import device_class
from edgeproxy.policies.model import KeySettings, Policy


@dataclass(frozen=True, slots=True)
class RequestKey:
    text: str
    """Unambiguous key text (``edgeproxy.cache.key.key_text`` of the parts), stored with the entry."""
    hash: bytes
    """xxh3_128 of ``text``: the storage key."""
    url: str
    """``host + target`` as keyed: what URL and prefix purges compare against."""
    upstream_target: str
    """Path and query to request from the origin; equals the keyed target."""
    parts: tuple[tuple[str, str], ...]
    """(name, value) pairs that make up the key, in order, for ``policy explain`` and debugging."""


def request_key(policy: Policy, req: RequestHead) -> RequestKey:
    """Key ``req`` under ``policy``. HEAD shares GET's key: a stored GET answers a HEAD (RFC 9110 §9.3.2)."""
    settings = policy.key
    host = req.host.lower() if settings.lowercase_host else req.host
    path, question, query = req.target.partition("?")
    target = path + _keyed_query(settings, question, query)
    parts = [("method", "GET" if req.method == "HEAD" else req.method), ("host", host), ("target", target)]
    for name in settings.headers:
        values = [value.strip() for field, value in req.headers if field == name]
        if values:
            parts.append((f"header:{name}", ", ".join(values)))
    if settings.cookies:
        cookies = request_cookies(req)
        parts.extend((f"cookie:{name}", cookies[name]) for name in settings.cookies if name in cookies)
    if settings.device_class:
        parts.append(("device", device_class(req.header("user-agent")).value))
    text = key_text(chain.from_iterable(parts))
    return RequestKey(text, key_hash(text), host + target, target, tuple(parts))


def _keyed_query(settings: KeySettings, question: str, query: str) -> str:
    """The query as keyed and forwarded, with its ``?`` (absent when nothing remains)."""
    if settings.query == "ignore":
        return ""
    if settings.query == "all" and not settings.sort_query and not settings.strip_params:
        # An empty query ("/m?") reaches the origin as "/m" (yarl drops it), so it keys as "/m".
        return question + query if query else ""
    pairs = [pair for pair in query.split("&") if pair]
    if settings.strip_params:
        strip = _names_matcher(settings.strip_params)
        pairs = [pair for pair in pairs if not strip.match(_param_name(pair))]
    if settings.query != "all":
        listed = _names_matcher(settings.query_params)
        keep = settings.query == "include"
        pairs = [pair for pair in pairs if bool(listed.match(_param_name(pair))) is keep]
    if settings.sort_query:
        pairs.sort()
    return "?" + "&".join(pairs) if pairs else ""


def _param_name(pair: str) -> str:
    """A parameter's name as the origin will decode it, so ``utm%5Fsource`` is still ``utm_source``."""
    name = pair.partition("=")[0]
    return unquote_plus(name) if "%" in name or "+" in name else name


@lru_cache(maxsize=256)
def _names_matcher(globs: tuple[str, ...]) -> re.Pattern[str]:
    return re.compile("|".join(fnmatch.translate(glob) for glob in globs))
