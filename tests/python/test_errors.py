"""Bad arguments give a clear error naming them; a failed call stores nothing."""

from __future__ import annotations

import math
import pickle

import numpy as np
import pytest

import pomaidb
from pomaidb import PomaiDBError, StatusCode

INVALID_ARGUMENT = 1
CLOSED = 12


def test_put_with_wrong_dim_is_invalid_argument(open_db) -> None:
    db = open_db(4)
    with pytest.raises(PomaiDBError) as e:
        pomaidb.put_batch(db, [1], [[1.0, 2.0, 3.0]])
    assert e.value.code == INVALID_ARGUMENT
    assert isinstance(e.value, ValueError)
    assert pomaidb.count(db) == 0


def test_search_with_wrong_dim_is_invalid_argument(open_db) -> None:
    db = open_db(4)
    pomaidb.put_batch(db, [1], [[1, 2, 3, 4]])
    with pytest.raises(PomaiDBError) as e:
        pomaidb.search_batch(db, [[1.0, 2.0]], topk=1)
    assert e.value.code == INVALID_ARGUMENT


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_non_finite_vector_stores_nothing(open_db, bad: float) -> None:
    db = open_db(3)
    with pytest.raises(PomaiDBError) as e:
        pomaidb.put_batch(db, [1, 2, 3], [[1, 2, 3], [4, bad, 6], [7, 8, 9]])
    assert e.value.code == INVALID_ARGUMENT
    assert pomaidb.count(db) == 0
    assert not pomaidb.exists(db, 1)


def test_non_finite_query_is_invalid_argument(open_db) -> None:
    db = open_db(2)
    pomaidb.put_batch(db, [1], [[1, 2]])
    with pytest.raises(PomaiDBError) as e:
        pomaidb.search(db, [[math.nan, 1]], topk=1)
    assert e.value.code == INVALID_ARGUMENT


def test_length_mismatch_names_both_and_stores_nothing(open_db) -> None:
    db = open_db(2)
    with pytest.raises(ValueError, match="ids") as e:
        pomaidb.put_batch(db, [1, 2, 3], [[1, 2], [3, 4]])
    assert e.value.code == INVALID_ARGUMENT
    assert pomaidb.count(db) == 0


@pytest.mark.parametrize("vectors", [[1.0, 2.0], [[[1.0, 2.0]]], [[1.0, 2.0], [3.0]], [["a", "b"]]],
                         ids=["1-D", "3-D", "ragged", "strings"])
def test_vectors_must_be_a_numeric_matrix(open_db, vectors) -> None:
    db = open_db(2)
    with pytest.raises(ValueError, match="vectors"):
        pomaidb.put_batch(db, [1] if len(vectors) == 1 else [1, 2], vectors)
    assert pomaidb.count(db) == 0


@pytest.mark.parametrize("ids", [[-1], [2**64], np.array([3, -4])])
def test_ids_out_of_range_are_rejected(open_db, ids) -> None:
    db = open_db(2)
    with pytest.raises((ValueError, OverflowError), match="ids"):
        pomaidb.put_batch(db, ids, [[1, 2]] * len(ids))
    assert pomaidb.count(db) == 0


def test_non_integer_ids_are_a_type_error(open_db) -> None:
    db = open_db(2)
    with pytest.raises(TypeError, match="ids"):
        pomaidb.put_batch(db, [1.5], [[1, 2]])
    with pytest.raises(TypeError, match="ids"):
        pomaidb.put_batch(db, np.array([1.0]), [[1, 2]])


def test_unknown_metric_is_a_value_error_naming_it(db_path) -> None:
    with pytest.raises(ValueError, match="foo"):
        pomaidb.open_db(db_path, dim=4, metric="foo")


@pytest.mark.parametrize("value", ["f16", "SQ8", None, 1])
def test_unknown_hnsw_vectors_is_a_value_error_naming_it(db_path, value) -> None:
    with pytest.raises(ValueError, match="hnsw_vectors"):
        pomaidb.open_db(db_path, dim=4, hnsw_vectors=value)


def test_unknown_option_is_a_type_error_naming_it(db_path) -> None:
    with pytest.raises(TypeError, match="shard_count"):
        pomaidb.open_db(db_path, dim=4, shard_count=2)


@pytest.mark.parametrize("opts", [{"dim": 0}, {"dim": 4, "shards": 0}, {"dim": -1}, {"dim": 4, "hnsw_m": 2**32}])
def test_bad_open_values_are_value_errors(db_path, opts) -> None:
    with pytest.raises(ValueError):
        pomaidb.open_db(db_path, **opts)


def test_every_call_on_a_closed_db_raises_closed(db_path) -> None:
    db = pomaidb.open_db(db_path, dim=2)
    pomaidb.put_batch(db, [1], [[1, 2]])
    pomaidb.close(db)
    pomaidb.close(db)  # second close: no-op
    calls = [
        lambda: pomaidb.put_batch(db, [2], [[1, 2]]),
        lambda: pomaidb.put_batch(db, [2], [[1, 2]], metadata=[b"x"]),
        lambda: pomaidb.delete(db, 1),
        lambda: pomaidb.get(db, 1),
        lambda: pomaidb.exists(db, 1),
        lambda: pomaidb.count(db),
        lambda: pomaidb.freeze(db),
        lambda: pomaidb.search(db, [[1, 2]]),
        lambda: pomaidb.search_batch(db, [[1, 2]]),
    ]
    for call in calls:
        with pytest.raises(PomaiDBError) as e:
            call()
        assert e.value.code == CLOSED


def test_error_carries_code_and_message_and_pickles(open_db) -> None:
    db = open_db(4)
    with pytest.raises(PomaiDBError) as e:
        pomaidb.put_batch(db, [1], [[1.0]])
    err = e.value
    assert err.code == StatusCode.INVALID_ARGUMENT
    assert err.message and err.message in str(err)
    again = pickle.loads(pickle.dumps(err))
    assert type(again) is type(err) and again.code == err.code and again.message == err.message


def test_not_a_database_is_a_type_error() -> None:
    with pytest.raises(TypeError):
        pomaidb.count("not a db")  # type: ignore[arg-type]
