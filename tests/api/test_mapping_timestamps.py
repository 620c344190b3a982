"""Response times are built from the moment's microseconds (mapping.timestamp): the same seconds and
nanos as protobuf's own Timestamp.FromDatetime, for any aware moment and offset, and naive ones."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from google.protobuf.timestamp_pb2 import Timestamp
from hypothesis import given
from hypothesis import strategies as st

from recommender.api.mapping import timestamp

offsets = st.integers(-14 * 60, 14 * 60).map(lambda m: timezone(timedelta(minutes=m)))


@given(st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30), timezones=offsets | st.just(UTC)))
def test_an_aware_moment_maps_as_from_datetime_does(moment: datetime) -> None:
    expected = Timestamp()
    expected.FromDatetime(moment)
    found = timestamp(moment)
    assert found is not None
    assert (found.seconds, found.nanos) == (expected.seconds, expected.nanos)


@given(st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30)))
def test_a_naive_moment_is_read_as_utc(moment: datetime) -> None:
    found = timestamp(moment)
    assert found is not None
    assert found.ToDatetime() == moment


def test_none_is_none() -> None:
    assert timestamp(None) is None
