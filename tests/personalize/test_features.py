"""Feature extraction is pure: same inputs, same numbers; unknown users get cold-start values."""

from __future__ import annotations

import math

import numpy as np

from edgeproxy.personalize.features import (
    FEATURE_NAMES,
    Device,
    UserContext,
    UserProfile,
    category_code,
    cross_features,
    device_class,
    feature_matrix,
    item_matrix,
    item_row,
    user_features,
)
from edgeproxy.personalize.ranker import cookie_value

NOW = 1_790_000_000.0  # 2026-09-21T14:13:20Z
ITEM = {"id": 1, "title": "x", "category": "books", "price": 19.0, "popularity": 0.4, "published_at": NOW - 10 * 86_400}
PROFILE = UserProfile(affinities=(("books", 0.75), ("music", 0.25)), price_log=math.log1p(10.0), recency=0.5, activity=20)


def test_item_row_reads_the_json_fields_and_marks_bad_ones_missing() -> None:
    price_log, popularity, category, published = item_row(ITEM)
    assert (price_log, popularity, category, published) == (math.log1p(19.0), 0.4, category_code("books"), NOW - 864_000)
    assert all(math.isnan(v) for v in item_row({"price": "cheap", "popularity": True, "category": 3}))
    assert all(math.isnan(v) for v in item_row("not an object"))
    assert item_matrix([ITEM, {}]).shape == (2, 4)


def test_category_codes_are_stable_and_small() -> None:
    assert category_code("books") == category_code("books")
    assert 0 <= category_code("electronics") < 256
    assert math.isnan(category_code(None))


def test_known_user_features() -> None:
    ctx = UserContext("u1", PROFILE, Device.MOBILE, "DE")
    user = user_features(ctx, NOW)
    assert user == {"user_known": 1.0, "user_activity_log": math.log1p(20), "device": 1.0, "country": 2.0, "hour": 14.0}
    cross = cross_features(item_matrix([ITEM, {**ITEM, "category": "garden"}]), ctx, NOW)
    np.testing.assert_allclose(cross["cat_affinity"], [0.75, 0.0])
    np.testing.assert_allclose(cross["price_gap"], [math.log1p(19) - math.log1p(10)] * 2)
    np.testing.assert_allclose(cross["item_age_days"], [10.0, 10.0])
    np.testing.assert_allclose(cross["age_x_recency"], [5.0, 5.0])


def test_cold_start_user_has_missing_profile_features() -> None:
    ctx = UserContext(None, None, Device.DESKTOP, "ZZ")
    user = user_features(ctx, NOW)
    assert user["user_known"] == 0.0 and math.isnan(user["user_activity_log"])
    assert user["country"] == 12.0  # any unlisted country shares one code
    cross = cross_features(item_matrix([ITEM]), ctx, NOW)
    assert math.isnan(cross["cat_affinity"][0]) and math.isnan(cross["price_gap"][0])
    assert cross["item_age_days"][0] == 10.0


def test_full_matrix_follows_the_requested_name_order() -> None:
    ctx = UserContext("u1", PROFILE)
    full = feature_matrix(item_matrix([ITEM]), ctx, NOW)
    assert full.shape == (1, len(FEATURE_NAMES))
    reordered = feature_matrix(item_matrix([ITEM]), ctx, NOW, ("hour", "cat_affinity"))
    np.testing.assert_array_equal(reordered[0], [full[0, FEATURE_NAMES.index("hour")], 0.75])


def test_profile_json_round_trip_and_errors() -> None:
    assert UserProfile.from_json(PROFILE.to_json()) == PROFILE
    for bad in (b"[]", b'{"affinities": {"books": "a lot"}}', b'{"activity": "many"}'):
        try:
            UserProfile.from_json(bad)
        except ValueError:
            continue
        raise AssertionError(f"accepted {bad!r}")


def test_device_class_and_cookie() -> None:
    assert device_class("Mozilla/5.0 (iPad; CPU OS 17_0 like Mac OS X) Mobile") is Device.TABLET
    assert device_class("Mozilla/5.0 (Linux; Android 14) Mobile Safari") is Device.MOBILE
    assert device_class(None) is Device.DESKTOP
    assert cookie_value("a=1; uid=u0042; b=2", "uid") == "u0042"
    assert cookie_value("xuid=1", "uid") is None
