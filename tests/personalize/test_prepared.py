"""Fill-time preparation: a reordered body is the base document with only the list permuted."""

from __future__ import annotations

import json

import numpy as np

from edgeproxy.personalize.prepared import prepare
from edgeproxy.policies.model import PersonalizeSettings

from .conftest import catalog_body

SETTINGS = PersonalizeSettings(model="m")


def test_reordered_body_is_the_base_document_with_the_list_permuted() -> None:
    body = catalog_body(limit=30)
    prepared = prepare(body, SETTINGS)
    assert prepared is not None and prepared.n_candidates == 30
    order = np.random.default_rng(1).permutation(30)
    out = json.loads(prepared.body(order))
    base = json.loads(body)
    assert out["category"] == base["category"]
    assert out["items"] == [base["items"][i] for i in order]
    assert prepared.item_ids[:2] == (str(base["items"][0]["id"]), str(base["items"][1]["id"]))


def test_nested_path_and_unicode_survive() -> None:
    body = json.dumps({"data": {"results": [{"id": 1, "t": "é"}, {"id": 2, "t": "☃"}], "n": 2}, "x": [1]}).encode()
    prepared = prepare(body, PersonalizeSettings(model="m", items_path="data.results"))
    assert prepared is not None
    assert json.loads(prepared.body([1, 0])) == {"data": {"results": [{"id": 2, "t": "☃"}, {"id": 1, "t": "é"}], "n": 2}, "x": [1]}


def test_only_max_candidates_are_ranked_and_the_rest_keep_their_place() -> None:
    prepared = prepare(catalog_body(limit=10), PersonalizeSettings(model="m", max_candidates=3))
    assert prepared is not None and prepared.n_candidates == 3
    ids = [it["id"] for it in json.loads(prepared.body([2, 1, 0]))["items"]]
    base = [it["id"] for it in json.loads(catalog_body(limit=10))["items"]]
    assert ids == base[2::-1] + base[3:]


def test_bodies_without_a_list_at_the_path_are_not_prepared() -> None:
    for body in (b"not json", b"\xff\xfe", b"[1, 2]", b'{"items": {}}', b'{"items": []}', b'{"other": [1]}'):
        assert prepare(body, SETTINGS) is None, body
