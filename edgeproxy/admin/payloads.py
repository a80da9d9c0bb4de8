"""Validation of admin request bodies: untrusted JSON in, typed commands out, or a precise reason.

Pure (no aiohttp): the HTTP layer turns :class:`InvalidPayload` into ``400`` with ``reason``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from urllib.parse import urlsplit

from edgeproxy.admin.control import ModelAction, ModelCommand, PurgeRequest

MAX_SELECTORS = 1000
"""Per purge request, summed over urls, prefixes and tags: bounds one call's ban list growth."""
MAX_SELECTOR_LENGTH = 2048

_PURGE_LISTS = ("urls", "prefixes", "tags")
_PURGE_FLAGS = ("all", "soft")


class InvalidPayload(ValueError):
    """A request body the admin API refuses; ``reason`` is safe to send back to the caller."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def parse_purge(body: object, client: str) -> PurgeRequest:
    """``{"urls": [...], "prefixes": [...], "tags": [...], "all": false, "soft": false}`` → PurgeRequest.

    At least one selector is required, and ``all`` stands alone: a typo in a list must never widen
    into purging everything.
    """
    obj = _object(body, allowed=_PURGE_LISTS + _PURGE_FLAGS)
    lists = {name: _strings(obj, name) for name in _PURGE_LISTS}
    flags = {name: _flag(obj, name) for name in _PURGE_FLAGS}
    count = sum(len(v) for v in lists.values())
    if count > MAX_SELECTORS:
        raise InvalidPayload(f"too many selectors: {count} > {MAX_SELECTORS}; split the purge into batches")
    if flags["all"] and count:
        raise InvalidPayload('"all": true purges everything; send it without urls, prefixes or tags')
    if not flags["all"] and not count:
        raise InvalidPayload('nothing to purge: give at least one of "urls", "prefixes", "tags", or "all": true')
    for field_name in ("urls", "prefixes"):
        for url in lists[field_name]:
            _absolute_url(field_name, url)
    for tag in lists["tags"]:
        if any(c.isspace() for c in tag):
            raise InvalidPayload(f'tag {tag!r} contains whitespace; Surrogate-Key tags are single tokens')
    return PurgeRequest(
        urls=lists["urls"], prefixes=lists["prefixes"], tags=lists["tags"],
        all=flags["all"], soft=flags["soft"], client=client,
    )


def parse_model_command(model: str, body: object, client: str) -> ModelCommand:
    """``{"action": "activate"|"canary"|"rollback", "version": "...", "share": 0.1}`` → ModelCommand."""
    obj = _object(body, allowed=("action", "version", "share"))
    action_text = obj.get("action")
    try:
        action = ModelAction(action_text)
    except ValueError:
        choices = ", ".join(a.value for a in ModelAction)
        raise InvalidPayload(f'"action" must be one of {choices}, got {action_text!r}') from None
    version = obj.get("version")
    if version is not None and (not isinstance(version, str) or not version):
        raise InvalidPayload('"version" must be a non-empty string')
    share = obj.get("share")
    if share is not None and (isinstance(share, bool) or not isinstance(share, (int, float))
                              or not math.isfinite(share) or not 0 < share <= 1):
        raise InvalidPayload('"share" must be a number in (0, 1]')
    if action in (ModelAction.ACTIVATE, ModelAction.CANARY) and version is None:
        raise InvalidPayload(f'"{action.value}" needs "version"')
    if action is ModelAction.CANARY and share is None:
        raise InvalidPayload('"canary" needs "share", the fraction of users to serve it to')
    if action is not ModelAction.CANARY and share is not None:
        raise InvalidPayload(f'"share" only applies to "canary", not "{action.value}"')
    return ModelCommand(model=model, action=action, version=version,
                        share=None if share is None else float(share), client=client)


def _object(body: object, *, allowed: tuple[str, ...]) -> Mapping[str, object]:
    if not isinstance(body, dict):
        raise InvalidPayload(f"body must be a JSON object, got {type(body).__name__}")
    unknown = sorted(set(body) - set(allowed))
    if unknown:
        raise InvalidPayload(f"unknown keys {unknown}; allowed: {list(allowed)}")
    return body


def _strings(obj: Mapping[str, object], name: str) -> tuple[str, ...]:
    value = obj.get(name, [])
    if not isinstance(value, list):
        raise InvalidPayload(f'"{name}" must be a list of strings, got {type(value).__name__}')
    for i, item in enumerate(value):
        if not isinstance(item, str) or not item:
            raise InvalidPayload(f'"{name}"[{i}] must be a non-empty string')
        if len(item) > MAX_SELECTOR_LENGTH:
            raise InvalidPayload(f'"{name}"[{i}] is {len(item)} characters; the limit is {MAX_SELECTOR_LENGTH}')
    return tuple(dict.fromkeys(value))


def _flag(obj: Mapping[str, object], name: str) -> bool:
    value = obj.get(name, False)
    if not isinstance(value, bool):
        raise InvalidPayload(f'"{name}" must be true or false, got {value!r}')
    return value


def _absolute_url(field_name: str, url: str) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidPayload(f'"{field_name}" entry {url!r} must be an absolute http(s) URL with a host')
