"""``@record``: the dataclass for small value records built on every request."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeVar, dataclass_transform

T = TypeVar("T")


@dataclass_transform()
def record(cls: type[T]) -> type[T]:
    """A slotted dataclass, never mutated by convention but not ``frozen``: a frozen dataclass's
    ``__init__`` sets every field through ``object.__setattr__``, and the records built on every
    request (the heads, ``Incoming``, ``Reuse``; on a miss also ``spec.Store``, ``CacheStatus``,
    ``edge.Fetch``, ``edge.Answer``) cost ~8 % of a hit's and of a miss's instructions that way
    (callgrind). Change one with ``dataclasses.replace``. Stored objects (``CacheEntry``) stay
    frozen: they are shared by every request that hits them."""
    return dataclass(slots=True)(cls)
