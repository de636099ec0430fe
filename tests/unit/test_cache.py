"""cache.BoundedCache: the one rule every memo of ipvsctl stays small by."""

from __future__ import annotations

import pytest

from ipvsctl.cache import BoundedCache


def test_a_missing_key_is_made_once_and_kept():
    made = []
    cache = BoundedCache(4, lambda key: made.append(key) or key * 2)
    assert [cache[k] for k in (1, 2, 1, 2, 1)] == [2, 4, 2, 4, 2]
    assert made == [1, 2]


def test_the_entry_after_the_limit_starts_afresh():
    cache = BoundedCache(3, str)
    for k in range(3):
        cache[k]
    assert len(cache) == 3
    assert cache[3] == "3" and dict(cache) == {3: "3"}
    cache.put(4, "four")
    cache.put(5, "five")
    assert len(cache) == 3
    cache.put(6, "six")
    assert dict(cache) == {6: "six"}


def test_without_a_maker_a_missing_key_is_missing():
    cache = BoundedCache(2)
    assert cache.get("x") is None
    with pytest.raises(KeyError):
        cache["x"]


def test_a_maker_that_raises_stores_nothing():
    def refuse(key):
        raise ValueError(key)

    cache = BoundedCache(2, refuse)
    with pytest.raises(ValueError):
        cache["bad"]
    assert not cache
