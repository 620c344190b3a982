"""The commit relay (service/relay.py): a process hands single results to another process's
group-commit writer and gets the outcome and profile a local commit gives; when the relay cannot
take a result (nobody serves it, a wrong key, closed), the result is committed locally. Two apps
over one real store, talking over a real local socket."""

from __future__ import annotations

import os
import threading
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from recommender.domain.assessment import AssessmentEvent
from recommender.domain.learner import Learner
from recommender.errors import AlreadyExists, NotFound
from recommender.service.app import App, build_app
from recommender.service.clock import ManualClock
from recommender.storage.store import DEFAULT_TENANT
from tests.conftest import T0, make_settings


def result(event_id: str, learner: str = "ana", score: float = 1.0) -> AssessmentEvent:
    return AssessmentEvent(event_id, learner, "safety-101", score, T0 - timedelta(minutes=1))


def address() -> str:
    return f"\0luban-test-relay-{uuid.uuid4().hex}"


@pytest.fixture
def writer(tiny_app: App) -> App:
    tiny_app.learners.upsert(DEFAULT_TENANT, Learner("ana", languages=("en",)))
    tiny_app.learners.upsert(DEFAULT_TENANT, Learner("bo", languages=("en",)))
    return tiny_app


@pytest.fixture
def sender(writer: App, store_url: str, tmp_path: Path, clock: ManualClock) -> Iterator[App]:
    """A second app over the same store (another process's, in production)."""
    app = build_app(make_settings(store_url, tmp_path), clock=clock)
    yield app
    app.close()


def committed_locally(app: App) -> bool:
    """Whether the app's own group-commit writer ever ran."""
    return app.learners._committer._thread is not None


def test_a_relayed_result_gets_what_a_local_commit_gives(writer: App, sender: App) -> None:
    where, key = address(), os.urandom(16)
    writer.learners.share_commits(where, key, serve=True)
    sender.learners.share_commits(where, key, serve=False)

    profile, duplicate = sender.learners.record(DEFAULT_TENANT, result("r1"))
    assert not duplicate
    assert profile == writer.learners.profile(DEFAULT_TENANT, "ana")
    assert [e.event_id for e in writer.store.events_of(DEFAULT_TENANT, "ana")] == ["r1"]

    again, duplicate = sender.learners.record(DEFAULT_TENANT, result("r1"))
    assert duplicate and again.skills == profile.skills
    with pytest.raises(AlreadyExists):
        sender.learners.record(DEFAULT_TENANT, result("r1", score=0.0))
    with pytest.raises(NotFound):
        sender.learners.record(DEFAULT_TENANT, result("r2", learner="nobody"))
    assert not committed_locally(sender), "every result went through the relay"


def test_concurrent_results_through_both_are_each_stored_once(writer: App, sender: App) -> None:
    where, key = address(), os.urandom(16)
    writer.learners.share_commits(where, key, serve=True)
    sender.learners.share_commits(where, key, serve=False)
    outcomes: list[bool] = []

    def record(app: App, event_id: str, learner: str) -> None:
        outcomes.append(app.learners.record(DEFAULT_TENANT, result(event_id, learner))[1])

    threads = [
        threading.Thread(target=record, args=(app, f"{name}-{i}", learner))
        for i in range(12)
        for app, name, learner in ((writer, "w", "ana"), (sender, "s", "bo"))
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert outcomes == [False] * 24
    assert len(writer.store.events_of(DEFAULT_TENANT, "ana")) == 12
    assert len(writer.store.events_of(DEFAULT_TENANT, "bo")) == 12
    assert writer.learners.profile(DEFAULT_TENANT, "bo") == sender.learners.profile(DEFAULT_TENANT, "bo")


def test_without_a_relay_results_commit_locally(writer: App, sender: App) -> None:
    sender.learners.share_commits(address(), os.urandom(16), serve=False)  # nobody serves it
    profile, duplicate = sender.learners.record(DEFAULT_TENANT, result("r1"))
    assert not duplicate and profile.skills
    assert committed_locally(sender)


def test_a_peer_without_the_key_commits_locally(writer: App, sender: App) -> None:
    where = address()
    writer.learners.share_commits(where, os.urandom(16), serve=True)
    sender.learners.share_commits(where, os.urandom(16), serve=False)
    assert not sender.learners.record(DEFAULT_TENANT, result("r1"))[1]
    assert committed_locally(sender)
    assert not committed_locally(writer)


def test_after_the_relay_closes_results_commit_locally(writer: App, sender: App) -> None:
    where, key = address(), os.urandom(16)
    writer.learners.share_commits(where, key, serve=True)
    sender.learners.share_commits(where, key, serve=False)
    sender.learners.record(DEFAULT_TENANT, result("r1"))
    assert not committed_locally(sender)
    writer.learners.close()  # a draining worker 0: its relay answers what it read, then closes
    assert not sender.learners.record(DEFAULT_TENANT, result("r2"))[1]
    assert committed_locally(sender)
    assert [e.event_id for e in sender.store.events_of(DEFAULT_TENANT, "ana")] == ["r1", "r2"]


def test_a_message_that_is_not_a_request_is_hung_up_on_and_never_run(writer: App, sender: App) -> None:
    """Messages are JSON data: a pickle (which would run code when loaded) from a peer that knows
    the key is refused like any other garbage, and the relay goes on serving the others."""
    import pickle
    from multiprocessing.connection import Client

    where, key = address(), os.urandom(16)
    writer.learners.share_commits(where, key, serve=True)
    ran: list[bool] = []
    rogue = Client(where, family="AF_UNIX", authkey=key)
    rogue.send_bytes(pickle.dumps(_Marker(ran)))
    with pytest.raises(EOFError):
        rogue.recv_bytes()  # hung up on
    rogue.close()
    assert not ran
    sender.learners.share_commits(where, key, serve=False)
    profile, duplicate = sender.learners.record(DEFAULT_TENANT, result("after-rogue"))
    assert not duplicate and profile.skills and not committed_locally(sender)


class _Marker:
    """Records that it was unpickled: a pickle runs code of the sender's choosing when loaded."""

    def __init__(self, ran: list[bool]) -> None:
        self.ran = ran

    def __reduce__(self) -> tuple[object, tuple[object, ...]]:
        return (_ran, (self.ran,))


def _ran(ran: list[bool]) -> None:
    ran.append(True)
