"""The proto <-> domain mapping's own arithmetic, where it replaces a library call for speed."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from hypothesis import given
from hypothesis import strategies as st

from recommender.api.mapping import parse_timestamp
from recommender.errors import InvalidInput

FIRST_SECOND = -62_135_596_800  # 0001-01-01T00:00:00Z
LAST_SECOND = 253_402_300_799  # 9999-12-31T23:59:59Z


def _library(ts: Timestamp) -> datetime | None:
    try:
        return ts.ToDatetime(tzinfo=UTC)
    except (ValueError, OverflowError, OSError):
        return None


def _ours(ts: Timestamp) -> datetime | None:
    """None when rejected, and then rejected as a bad value of the field named."""
    try:
        return parse_timestamp(ts, "result.occurred_at")
    except InvalidInput as exc:
        rejected_field = exc.violations[0].field
    assert rejected_field == "result.occurred_at"
    return None


@given(
    st.integers(FIRST_SECOND - 10**6, LAST_SECOND + 10**6) | st.integers(-(2**63), 2**63 - 1),
    st.integers(0, 999_999_999) | st.integers(-(2**31), 2**31 - 1),
)
def test_parse_timestamp_is_the_librarys_conversion(seconds: int, nanos: int) -> None:
    """The same instant as Timestamp.ToDatetime (microseconds truncated), and invalid exactly when
    the library finds it invalid: years outside 1-9999, nanos outside [0, 1e9)."""
    ts = Timestamp(seconds=seconds, nanos=nanos)
    assert _ours(ts) == _library(ts)


@pytest.mark.parametrize(
    ("seconds", "nanos", "expected"),
    [
        (FIRST_SECOND, 0, datetime(1, 1, 1, tzinfo=UTC)),
        (LAST_SECOND, 999_999_999, datetime(9999, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC)),
        (1_700_000_000, 1_999, datetime(2023, 11, 14, 22, 13, 20, 1, tzinfo=UTC)),
        (FIRST_SECOND - 1, 0, None),
        (LAST_SECOND + 1, 0, None),
        (0, 1_000_000_000, None),
        (0, -1, None),
    ],
)
def test_parse_timestamp_edges(seconds: int, nanos: int, expected: datetime | None) -> None:
    assert _ours(Timestamp(seconds=seconds, nanos=nanos)) == expected
