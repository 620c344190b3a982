"""The server's log handler writes INFO lines in batches: every line is still written, whole, once
and in order; WARNING and worse at once; a batch never larger than one atomic pipe write."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator

import pytest

from recommender.api.interceptors import REQUEST_ID, JsonFormatter
from recommender.composition_root import BATCH_BYTES, BatchedStreamHandler


class Writes:
    """A stream that keeps each write."""

    def __init__(self) -> None:
        self.writes: list[str] = []
        self.lock = threading.Lock()

    def write(self, text: str) -> None:
        with self.lock:
            self.writes.append(text)

    def flush(self) -> None:
        pass

    def text(self) -> str:
        with self.lock:
            return "".join(self.writes)


@pytest.fixture
def logged() -> Iterator[tuple[logging.Logger, BatchedStreamHandler, Writes]]:
    stream = Writes()
    handler = BatchedStreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    logger = logging.getLogger("recommender.test-batches")
    logger.propagate, logger.level = False, logging.INFO
    logger.addHandler(handler)
    try:
        yield logger, handler, stream
    finally:
        logger.removeHandler(handler)
        handler.close()


def test_lines_are_written_whole_in_order_in_batches(
    logged: tuple[logging.Logger, BatchedStreamHandler, Writes],
) -> None:
    logger, handler, stream = logged
    for i in range(2000):
        logger.info("call %d %s", i, "é" * (i % 7))  # some lines longer in bytes than in characters
    handler.flush()
    expected = "".join(f"INFO call {i} {'é' * (i % 7)}\n" for i in range(2000))
    assert stream.text() == expected
    assert 1 < len(stream.writes) < 2000, "batched, not one write per line"
    assert all(len(w.encode()) <= BATCH_BYTES and w.endswith("\n") for w in stream.writes)


def test_a_warning_is_written_at_once_after_what_came_before(
    logged: tuple[logging.Logger, BatchedStreamHandler, Writes],
) -> None:
    logger, _, stream = logged
    logger.info("first")
    logger.info("second")
    logger.warning("trouble")
    assert stream.text() == "INFO first\nINFO second\nWARNING trouble\n"


def test_held_lines_are_written_without_a_flush(logged: tuple[logging.Logger, BatchedStreamHandler, Writes]) -> None:
    logger, _, stream = logged
    logger.info("waiting")
    pause = threading.Event()
    for _ in range(600):  # the writer thread writes it within BATCH_SECONDS
        if stream.text():
            break
        pause.wait(0.05)
    assert stream.text() == "INFO waiting\n"


def test_closing_writes_what_is_held_and_later_lines_at_once(
    logged: tuple[logging.Logger, BatchedStreamHandler, Writes],
) -> None:
    logger, handler, stream = logged
    logger.info("held")
    handler.close()
    assert stream.text() == "INFO held\n"
    logger.info("after")
    assert stream.text() == "INFO held\nINFO after\n"


def test_a_line_is_formatted_when_logged(logged: tuple[logging.Logger, BatchedStreamHandler, Writes]) -> None:
    """The request id is the logging call's, not whatever is current when the batch is written."""
    logger, handler, stream = logged
    handler.setFormatter(JsonFormatter())
    token = REQUEST_ID.set("req-9")
    try:
        logger.info("inside the call")
    finally:
        REQUEST_ID.reset(token)
    handler.flush()
    assert json.loads(stream.text())["request_id"] == "req-9"
