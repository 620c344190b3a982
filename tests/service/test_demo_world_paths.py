"""Issue #24 on the demo world: no learner who can follow some module of the catalog is rejected;
each gets a path toward the reachable part of their role, with what blocks the rest named; and
with Chinese as a route, the Chinese ladder opens every role that needs modules taught only in
Chinese above a learner's level."""

from __future__ import annotations

from recommender.domain.path import ReasonCode, StopReason
from recommender.errors import LubanError
from recommender.service.app import App
from recommender.service.demo import load_demo
from recommender.service.recommend import PathRequest

LEARNERS = 500  # includes demo-0408 (MA: ar, fr), whose reachable modules are all behind her


def test_every_demo_learner_gets_a_path_with_the_blockers_named(app: App) -> None:
    load_demo(app, learners=LEARNERS)
    out_of_reach = climbing = 0
    for i in range(LEARNERS):
        learner_id = f"demo-{i:04d}"
        try:
            path = app.paths.recommend("default", PathRequest(learner_id, 10))
        except LubanError as exc:  # pragma: no cover - the failure message says who and why
            raise AssertionError(f"{learner_id} rejected: {exc}") from exc
        learner = app.store.get_learner_record("default", learner_id)
        assert learner is not None and path.locale == learner.learner.languages[0]
        named = [r.params["skill_id"] for r in path.blockers if r.code is not ReasonCode.NEEDS_SUPPORT]
        assert named == list(path.unreachable_skill_ids)
        if path.unreachable_skill_ids:
            out_of_reach += 1
            assert path.stop_reason in (StopReason.ROLE_OUT_OF_REACH, StopReason.REPEATED_FAILURE)
        climbing += any(r.code is ReasonCode.LANGUAGE_UNLOCK for s in path.steps for r in s.reasons)
    assert not out_of_reach, "every demo role is open to every demo learner, through the Chinese ladder if need be"
    assert climbing, "the demo world has learners whose role needs the Chinese ladder"
