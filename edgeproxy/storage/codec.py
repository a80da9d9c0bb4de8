"""Bytes for cache objects that leave the process (Redis L2), without pickle.

Layout (all integers big-endian)::

    b"EP" | version u8 | kind u8 | meta_len u32 | checksum u64 | meta (JSON, UTF-8) | body

``checksum`` is xxh3_64 over ``meta | body``, so a truncated, corrupted or foreign value is
rejected as a whole instead of being served. The body is appended raw; decoding copies it once
into the entry's ``bytes``. ``CacheEntry.prepared`` is per-process derived data and never leaves.
Pickle is out because a shared Redis is a trust boundary: unpickling runs code.
"""

from __future__ import annotations

import json
import struct
from typing import Any

import xxhash

from edgeproxy.cache.entry import CacheEntry, StoredObject, VaryIndex, check_fields, pack_fields
from edgeproxy.cache.key import key_url
from edgeproxy.cache.spec import NO_TAGS

MAGIC = b"EP"
VERSION = 2
"""Written by this version. 2 stores an entry's header fields as their block (``"h"``: the
``CacheEntry.fields`` string) and no URL (the key names it); 1 stored the fields as [name, value]
pairs and the URL as ``"u"``, and is still read (its ``"u"`` ignored), so objects a previous
release wrote to a shared Redis are used rather than refetched."""
_READABLE = (1, VERSION)
_PREFIX = struct.Struct(">2sBBIQ")
_KIND_ENTRY = ord("E")
_KIND_VARY = ord("V")


class CodecError(ValueError):
    """Stored bytes are not a cache object this version can read (corrupt, truncated, foreign,
    or written by an incompatible version). Readers treat the value as a miss."""


def encode(obj: StoredObject) -> bytes:
    """Serialize a ``CacheEntry`` or ``VaryIndex`` (``prepared`` is dropped)."""
    if isinstance(obj, CacheEntry):
        kind, body = _KIND_ENTRY, obj.body
        meta: dict[str, Any] = {
            "k": obj.key, "s": obj.status, "h": obj.fields,
            "rq": obj.request_time, "rs": obj.response_time, "f": obj.fresh_for,
            "w": obj.stale_while_revalidate, "e": obj.stale_if_error, "d": obj.stale_if_disconnected,
            "m": obj.must_revalidate, "n": obj.no_cache, "v": obj.vary,
            "t": sorted(obj.tags), "a": obj.stored_at,
        }
    elif isinstance(obj, VaryIndex):
        kind, body = _KIND_VARY, b""
        meta = {"k": obj.key, "hn": obj.header_names, "a": obj.stored_at, "f": obj.fresh_for, "v": obj.variants}
    else:
        raise TypeError(f"cannot encode {type(obj).__name__}: expected CacheEntry or VaryIndex")
    meta_bytes = json.dumps(meta, separators=(",", ":"), ensure_ascii=False).encode("utf-8", "surrogatepass")
    digest = xxhash.xxh3_64()
    digest.update(meta_bytes)
    digest.update(body)
    return b"".join((_PREFIX.pack(MAGIC, VERSION, kind, len(meta_bytes), digest.intdigest()), meta_bytes, body))


def decode(data: bytes) -> StoredObject:
    """Parse bytes made by :func:`encode`; raise :class:`CodecError` on anything else."""
    if len(data) < _PREFIX.size:
        raise CodecError(f"truncated cache object: {len(data)} bytes, header needs {_PREFIX.size}")
    magic, version, kind, meta_len, checksum = _PREFIX.unpack_from(data)
    if magic != MAGIC:
        raise CodecError(f"not a cache object: magic {magic!r}, expected {MAGIC!r}")
    if version not in _READABLE:
        raise CodecError(f"cache object format version {version} is not readable by version {VERSION}")
    view = memoryview(data)
    meta_end = _PREFIX.size + meta_len
    if meta_end > len(data):
        raise CodecError(f"truncated cache object: metadata needs {meta_end} bytes, have {len(data)}")
    if xxhash.xxh3_64_intdigest(view[_PREFIX.size:]) != checksum:
        raise CodecError("cache object checksum mismatch: corrupt or truncated value")
    try:
        meta = json.loads(view[_PREFIX.size:meta_end].tobytes().decode("utf-8", "surrogatepass"))
        if kind == _KIND_ENTRY:
            return _entry(meta, view[meta_end:].tobytes(), version)
        if kind == _KIND_VARY:
            return VaryIndex(
                key=_str(meta["k"]),
                header_names=tuple(_str(n) for n in meta["hn"]),
                stored_at=_num(meta["a"]),
                fresh_for=_num(meta["f"]),
                variants=tuple(_str(v) for v in meta.get("v", ())),
            )
    except (KeyError, TypeError, ValueError) as exc:
        raise CodecError(f"malformed cache object metadata: {exc}") from exc
    raise CodecError(f"unknown cache object kind {kind!r}")


def _entry(meta: dict[str, Any], body: bytes, version: int) -> CacheEntry:
    key = _str(meta["k"])
    key_url(key)  # a key naming no URL would break every URL purge that met the object
    return CacheEntry(
        key=key,
        status=_int(meta["s"]),
        fields=check_fields(_str(meta["h"])) if version >= 2 else pack_fields(_headers(meta["h"])),
        body=body,
        request_time=_num(meta["rq"]),
        response_time=_num(meta["rs"]),
        fresh_for=_num(meta["f"]),
        stale_while_revalidate=_num(meta["w"]),
        stale_if_error=_num(meta["e"]),
        # Absent in objects written before the disconnected window existed: they get none.
        stale_if_disconnected=_num(meta.get("d", 0.0)),
        must_revalidate=_bool(meta["m"]),
        no_cache=_bool(meta["n"]),
        vary=_headers(meta["v"]),
        tags=frozenset(_str(t) for t in meta["t"]) if meta["t"] else NO_TAGS,
        stored_at=_num(meta["a"]),
    )


def _str(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError(f"expected a string, got {type(value).__name__}")
    return value


def _int(value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"expected an integer, got {type(value).__name__}")
    return value


def _num(value: Any) -> float:
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        raise TypeError(f"expected a number, got {type(value).__name__}")
    return float(value)


def _bool(value: Any) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"expected a boolean, got {type(value).__name__}")
    return value


def _headers(value: Any) -> tuple[tuple[str, str], ...]:
    return tuple((_str(name), _str(field)) for name, field in value)
