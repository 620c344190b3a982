"""Issue #24 over a real server on the demo catalog: reason texts in the learner's language, and
honest explanations when the role is out of reach (the README tour's learner, amina)."""

from __future__ import annotations

import pytest

from recommender.api.pb.luban.path.v1 import learning_path_pb2 as pb
from recommender.service.demo import demo_catalog_path
from tests.api.conftest import Served


def takeable(catalog: pb.GetCatalogResponse, learner: pb.Learner) -> set[str]:
    """Modules the learner can follow: taught in one of their languages (Chinese-only: at their HSK level)."""
    out = set()
    for m in catalog.modules:
        shared = set(m.languages) & set(learner.languages)
        if shared and (shared != {"zh"} or learner.chinese_level >= m.min_chinese_level):
            out.add(m.module_id)
    return out


AMINA = pb.Learner(learner_id="amina", country="MA", languages=["ar", "fr"], target_role_id="cnc-machine-operator",
                   chinese_level=1)  # fmt: skip


@pytest.fixture
def demo(served: Served) -> Served:
    served.app.catalogs.load_file(demo_catalog_path())
    served.stub.UpsertLearner(pb.UpsertLearnerRequest(learner=AMINA))
    served.stub.RecordAssessment(
        pb.RecordAssessmentRequest(
            result=pb.AssessmentResult(
                event_id="amina-1", learner_id="amina", module_id="workshop-safety-101", score=0.9
            )
        )
    )
    return served


def test_the_tour_learner_is_told_what_blocks_her_role_first_and_every_reason_is_true(demo: Served) -> None:
    path = demo.stub.RecommendPath(pb.RecommendPathRequest(learner_id="amina", max_steps=5, locale="fr"))
    assert path.locale == "fr"
    assert path.stop_reason == pb.STOP_REASON_ROLE_OUT_OF_REACH
    assert path.steps, "she still gets a path toward the reachable part of the role"
    blocked = [r for r in path.blockers if r.code != pb.REASON_CODE_NEEDS_SUPPORT]
    assert [r.params["skill_id"] for r in blocked] == list(path.unreachable_skill_ids)
    assert {r.code for r in blocked} <= {pb.REASON_CODE_LANGUAGE_BLOCKED, pb.REASON_CODE_CHINESE_LEVEL_BLOCKED}
    catalog = demo.stub.GetCatalog(pb.GetCatalogRequest())
    can_take = takeable(catalog, AMINA)
    for r in blocked:
        assert r.params["module_id"] not in can_take
        assert "hors de portée" in r.text
    # names from the catalog's own French names
    assert "Conduite de machines CNC est hors de portée" in blocked[0].text
    assert all("(Opérateur sur machines CNC)" in r.text for s in path.steps for r in s.reasons
               if r.code == pb.REASON_CODE_ROLE_REQUIRES)  # fmt: skip
    for step in path.steps:
        assert step.module_id in can_take
        for r in step.reasons:
            if r.code == pb.REASON_CODE_PREREQUISITE_FOR:
                assert r.params["module_id"] in can_take, "a reason never points at a module she cannot take"
            if r.code == pb.REASON_CODE_SIMILAR_LEARNERS_SUCCEEDED:
                assert r.params["expected_success"] == f"{step.expected_success:.2f}"
        assert any(r.code == pb.REASON_CODE_LANGUAGE_MATCH and "Enseigné en" in r.text for r in step.reasons)


def test_without_a_locale_the_texts_are_in_the_learners_first_language(demo: Served) -> None:
    path = demo.stub.RecommendPath(pb.RecommendPathRequest(learner_id="amina", max_steps=3))
    assert path.locale == "ar"
    match = [r for s in path.steps for r in s.reasons if r.code == pb.REASON_CODE_LANGUAGE_MATCH]
    assert match and all(r.text.startswith("تُدرَّس") for r in match)
    assert all("غير متاحة" in r.text for r in path.blockers)
    zh = demo.stub.RecommendPath(pb.RecommendPathRequest(learner_id="amina", max_steps=3, locale="zh-CN"))
    assert zh.locale == "zh" and all("暂时无法学习" in r.text for r in zh.blockers)


def test_a_learner_whose_role_is_out_of_reach_is_not_rejected_when_some_module_is_in_their_language(
    demo: Served,
) -> None:
    """Issue #24: learners of the demo world whose reachable modules were all behind them were
    rejected with FAILED_PRECONDITION; now they get the path's blockers instead."""
    learner = pb.Learner(learner_id="karim", country="MA", languages=["ar", "fr"], target_role_id="live-stream-host")
    demo.stub.UpsertLearner(pb.UpsertLearnerRequest(learner=learner))
    path = demo.stub.RecommendPath(pb.RecommendPathRequest(learner_id="karim", locale="fr"))
    assert path.stop_reason == pb.STOP_REASON_ROLE_OUT_OF_REACH
    assert path.blockers and [r.params["skill_id"] for r in path.blockers] == list(path.unreachable_skill_ids)


def test_the_tours_learner_reaches_her_role_when_she_studies_chinese(demo: Served) -> None:
    """The README tour registers amina with Chinese at HSK 2: the CNC modules taught in Chinese are
    open to her, and the path reaches the role."""
    tour = pb.Learner()
    tour.CopyFrom(AMINA)
    tour.languages.append("zh")
    tour.chinese_level = 2
    demo.stub.UpsertLearner(pb.UpsertLearnerRequest(learner=tour))
    path = demo.stub.RecommendPath(pb.RecommendPathRequest(learner_id="amina", max_steps=50, locale="fr"))
    assert path.stop_reason == pb.STOP_REASON_ROLE_READY and path.readiness_after == pytest.approx(1.0)
    assert not path.unreachable_skill_ids and not path.blockers
