"""Codec: exact round trips (property-tested) and a CodecError for anything else."""

from __future__ import annotations

import json
import struct
from dataclasses import replace
from typing import Any

import pytest
import xxhash
from hypothesis import given
from hypothesis import strategies as st

from edgeproxy.cache.entry import CacheEntry, VaryIndex, pack_fields
from edgeproxy.cache.key import key_text, variant_key_text
from edgeproxy.storage.codec import CodecError, decode, encode

from .factories import make_entry, make_vary_index

texts = st.text(max_size=40)
numbers = st.floats(allow_nan=False, allow_infinity=False, width=64)
headers = st.lists(st.tuples(texts, texts), max_size=6).map(tuple)
field_names = st.text(st.characters(blacklist_characters=":\r\n"), min_size=1, max_size=20)
field_values = st.text(st.characters(blacklist_characters="\r\n"), max_size=40)
fields = st.lists(st.tuples(field_names, field_values), max_size=6).map(lambda pairs: pack_fields(tuple(pairs)))

primary_keys = st.builds(lambda host, target: key_text(["method", "GET", "host", host, "target", target]), texts, texts)
keys = primary_keys | st.builds(variant_key_text, primary_keys, headers)

entries = st.builds(
    CacheEntry,
    key=keys, status=st.integers(100, 599), fields=fields,
    body=st.binary(max_size=2048), request_time=numbers, response_time=numbers, fresh_for=numbers,
    stale_while_revalidate=numbers, stale_if_error=numbers, stale_if_disconnected=numbers, must_revalidate=st.booleans(),
    no_cache=st.booleans(), vary=headers, tags=st.frozensets(texts, max_size=4), stored_at=numbers,
)
vary_indexes = st.builds(
    VaryIndex, key=texts, header_names=st.lists(texts, max_size=4).map(tuple),
    stored_at=numbers, fresh_for=numbers,
)


@given(st.one_of(entries, vary_indexes))
def test_round_trip_is_exact(obj: CacheEntry | VaryIndex) -> None:
    assert decode(encode(obj)) == obj


@given(entries, st.data())
def test_any_single_byte_change_is_detected(entry: CacheEntry, data: st.DataObject) -> None:
    blob = bytearray(encode(entry))
    index = data.draw(st.integers(0, len(blob) - 1))
    blob[index] ^= data.draw(st.integers(1, 255))
    with pytest.raises(CodecError):
        decode(bytes(blob))


@given(entries, st.data())
def test_any_truncation_is_detected(entry: CacheEntry, data: st.DataObject) -> None:
    blob = encode(entry)
    with pytest.raises(CodecError):
        decode(blob[: data.draw(st.integers(0, len(blob) - 1))])


@given(st.binary(max_size=200))
def test_arbitrary_bytes_never_raise_anything_but_codec_error(blob: bytes) -> None:
    try:
        decode(blob)
    except CodecError:
        pass


def test_prepared_data_is_never_serialized() -> None:
    entry = make_entry()
    prepared = CacheEntry(**{f: getattr(entry, f) for f in entry.__dataclass_fields__} | {"prepared": object()})
    assert encode(prepared) == encode(entry)
    assert decode(encode(prepared)).prepared is None


def test_body_is_appended_raw_after_the_metadata() -> None:
    blob = encode(make_entry(body=b"raw-body-bytes"))
    assert blob.endswith(b"raw-body-bytes")
    assert b"pickle" not in blob and blob[:2] == b"EP"


def test_unknown_version_is_refused_with_a_clear_message() -> None:
    blob = bytearray(encode(make_vary_index()))
    blob[2] = 99
    with pytest.raises(CodecError, match="version 99"):
        decode(bytes(blob))


def test_foreign_value_is_refused() -> None:
    with pytest.raises(CodecError, match="magic"):
        decode(b"some other application's value under our key")


def test_well_formed_but_wrong_metadata_is_refused() -> None:
    meta = json.dumps({"k": 5, "hn": [], "a": 0, "f": 0}).encode()
    blob = struct.pack(">2sBBIQ", b"EP", 1, ord("V"), len(meta), xxhash.xxh3_64_intdigest(meta)) + meta
    with pytest.raises(CodecError, match="expected a string"):
        decode(blob)


def written_by_version_1(entry: CacheEntry, **meta_changes: Any) -> bytes:
    """``entry`` as format version 1 wrote it (header fields as [name, value] pairs), with
    ``meta_changes`` applied to its metadata (None removes a key)."""
    prefix = struct.Struct(">2sBBIQ")
    blob = encode(entry)
    meta = json.loads(blob[prefix.size : prefix.size + prefix.unpack_from(blob)[3]])
    meta["h"] = [list(pair) for pair in entry.headers]
    meta.update(meta_changes)
    meta = {k: v for k, v in meta.items() if v is not None}
    old_meta = json.dumps(meta, separators=(",", ":")).encode()
    digest = xxhash.xxh3_64()
    digest.update(old_meta)
    digest.update(entry.body)
    return prefix.pack(b"EP", 1, ord("E"), len(old_meta), digest.intdigest()) + old_meta + entry.body


def test_an_entry_written_by_version_1_decodes_to_the_same_entry() -> None:
    entry = replace(make_entry(), fields=pack_fields((("vary", "a"), ("etag", '"v1"'), ("vary", "b, c"))))
    assert decode(written_by_version_1(entry)) == entry


def test_a_version_1_entry_whose_fields_cannot_be_a_block_is_refused_not_misread() -> None:
    for fields in ([["x-a", "1\r\nx-injected: 2"]], [["x-a: b", "c"]], [["", "c"]]):
        with pytest.raises(CodecError, match="field block"):
            decode(written_by_version_1(make_entry(), h=fields))


def test_a_malformed_field_block_is_refused() -> None:
    blob = written_by_version_1(make_entry(), h="no colon here\r\n")
    blob = blob[:2] + bytes([2]) + blob[3:]  # the same metadata claimed as version 2 (checksum excludes the prefix)
    with pytest.raises(CodecError, match="field block"):
        decode(blob)


def test_an_entry_whose_key_names_no_url_is_refused() -> None:
    with pytest.raises(CodecError, match="cache key text"):
        decode(written_by_version_1(make_entry(), k="GET|example.test/items/1"))


def test_an_entry_written_before_the_disconnected_window_decodes_without_one() -> None:
    entry = make_entry(stale_if_disconnected=10.0)
    assert decode(written_by_version_1(entry, d=None)) == replace(entry, stale_if_disconnected=0.0)


def test_encoding_something_else_is_a_programming_error() -> None:
    with pytest.raises(TypeError, match="CacheEntry or VaryIndex"):
        encode("not an entry")  # type: ignore[arg-type]
