"""Fill-time preparation of a cached JSON list, so that a hit can reorder it without JSON work."""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from edgeproxy.personalize.features import Floats, item_matrix
from edgeproxy.policies.model import PersonalizeSettings

_SENTINEL = f"edgeproxy-items-{uuid.uuid4().hex}"


def _compact(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


@dataclass(frozen=True, slots=True)
class Prepared:
    """A cached body split around its item list: ``head + [items in any order] + tail``.

    ``head``/``tail`` and the items are serialized compactly, so a reordered body is valid JSON
    equal to the base document with only the list permuted.
    """

    base: bytes
    """The body as the origin sent it: what an unpersonalized response returns, byte for byte."""
    head: bytes
    tail: bytes
    items: tuple[bytes, ...]
    item_ids: tuple[str, ...]
    """Each item's ``id`` as text ("" when absent), for impression logs and click joins."""
    rows: Floats
    """Item matrix (features.ITEM_COLUMNS) of the first ``len(rows)`` items: the ranked candidates."""
    memo: dict[Any, Any] = field(default_factory=dict, compare=False, repr=False)
    """Per-model item-only scoring state, filled on the first hit that uses each model."""

    @property
    def n_candidates(self) -> int:
        return self.rows.shape[0]

    def body(self, order: Sequence[int] | np.ndarray) -> bytes:
        """The document with candidates in ``order``; items beyond the candidates keep their place."""
        ranked = [self.items[i] for i in order]
        ranked.extend(self.items[self.n_candidates :])
        return b"".join((self.head, b"[", b",".join(ranked), b"]", self.tail))


def _locate(doc: Any, path: str) -> tuple[Any, str | int] | None:
    """The container and key holding the list at dotted ``path``, or None when there is none."""
    parent: Any = None
    key: str | int = ""
    node = doc
    for part in path.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        parent, key, node = node, part, node[part]
    return (parent, key) if isinstance(node, list) and node else None


def prepare(body: bytes, settings: PersonalizeSettings) -> Prepared | None:
    """Parse a cacheable response once at fill time.

    None when the body is not a JSON object with a non-empty list at ``settings.items_path``: such
    a response is served unpersonalized. Only the first ``settings.max_candidates`` items are
    ranked; the rest follow in their original order.
    """
    try:
        doc = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return None
    where = _locate(doc, settings.items_path)
    if where is None:
        return None
    parent, key = where
    items: list[Any] = parent[key]
    parent[key] = _SENTINEL
    head, sep, tail = _compact(doc).partition(json.dumps(_SENTINEL))
    if not sep or _SENTINEL in tail:
        return None
    candidates = items[: settings.max_candidates]
    return Prepared(
        base=body,
        head=head.encode(),
        tail=tail.encode(),
        items=tuple(_compact(it).encode() for it in items),
        item_ids=tuple(str(it.get("id", "")) if isinstance(it, dict) else "" for it in items),
        rows=item_matrix(candidates),
    )
