"""Issue #24 over a real server on the demo catalog: reason texts in the learner's language, and
honest explanations when the role is out of reach (the README tour's learner, amina)."""

from __future__ import annotations

import pytest

from recommender.api.pb.luban.path.v1 import learning_path_pb2 as pb
from recommender.service.demo import demo_catalog_path
from tests.api.conftest import Served


def takeable(catalog: pb.GetCatalogResponse, learner: pb.Learner, level: int | None = None) -> set[str]:
    """Modules the learner can follow at an HSK level (their declared one by default): taught in one
    of their languages other than Chinese, or in Chinese at that level (HSK 1 at least when they
    do not list Chinese)."""
    level = learner.chinese_level if level is None else level
    listed = set(learner.languages)
    floor = 0 if "zh" in listed else 1
    out = set()
    for m in catalog.modules:
        in_chinese = "zh" in m.languages and level >= max(m.min_chinese_level, floor)
        if set(m.languages) & (listed - {"zh"}) or in_chinese:
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


def test_the_tour_learner_climbs_the_chinese_that_opens_her_role_and_every_reason_is_true(demo: Served) -> None:
    """Issue #24: the CNC modules are taught in Chinese (HSK 3) and not in Arabic or French; amina
    (HSK 1) is given the Chinese ladder first, each step at the level the path has reached."""
    path = demo.stub.RecommendPath(pb.RecommendPathRequest(learner_id="amina", max_steps=5, locale="fr"))
    assert path.locale == "fr"
    assert path.stop_reason == pb.STOP_REASON_MAX_STEPS and not path.blockers and not path.unreachable_skill_ids
    catalog = demo.stub.GetCatalog(pb.GetCatalogRequest())
    raises = {m.module_id: m.raises_chinese_level for m in catalog.modules}
    level = AMINA.chinese_level
    unlocks = []
    for step in path.steps:
        assert step.module_id in takeable(catalog, AMINA, level), "followed at the level reached by this step"
        for r in step.reasons:
            if r.code == pb.REASON_CODE_LANGUAGE_UNLOCK:
                unlocks.append(r)
                assert r.params["level_now"] == str(level) and int(r.params["level_needed"]) > level
                assert r.params["module_id"] in takeable(catalog, AMINA, int(r.params["level_needed"]))
                assert "Fait progresser votre chinois" in r.text
            if r.code == pb.REASON_CODE_PREREQUISITE_FOR:
                assert r.params["module_id"] in takeable(catalog, AMINA, 6), "never a module she cannot reach"
            if r.code == pb.REASON_CODE_SIMILAR_LEARNERS_SUCCEEDED:
                assert r.params["expected_success"] == f"{step.expected_success:.2f}"
        assert any(r.code == pb.REASON_CODE_LANGUAGE_MATCH and "Enseigné en" in r.text for r in step.reasons)
        level = max(level, raises[step.module_id])
    assert unlocks and level == 3, "HSK 3 within five steps: the level the CNC modules need"


def test_without_the_ladder_the_tour_learner_is_told_what_blocks_her_role_first(demo: Served) -> None:
    """With the HSK 2 module excluded no route reaches the CNC modules: the path says so first."""
    request = pb.RecommendPathRequest(learner_id="amina", max_steps=5, locale="fr", exclude_module_ids=["zh-hsk2-101"])
    path = demo.stub.RecommendPath(request)
    assert path.stop_reason == pb.STOP_REASON_ROLE_OUT_OF_REACH
    assert path.steps, "she still gets a path toward the reachable part of the role"
    blocked = [r for r in path.blockers if r.code != pb.REASON_CODE_NEEDS_SUPPORT]
    assert [r.params["skill_id"] for r in blocked] == list(path.unreachable_skill_ids)
    assert {r.code for r in blocked} == {pb.REASON_CODE_CHINESE_LEVEL_BLOCKED}, "she reads Chinese at HSK 1"
    catalog = demo.stub.GetCatalog(pb.GetCatalogRequest())
    can_take = takeable(catalog, AMINA)
    for r in blocked:
        assert r.params["module_id"] not in can_take and r.params["level_now"] == "1"
        assert "hors de portée" in r.text
    # names from the catalog's own French names
    assert "Conduite de machines CNC est hors de portée" in blocked[0].text
    assert all("(Opérateur sur machines CNC)" in r.text for s in path.steps for r in s.reasons
               if r.code == pb.REASON_CODE_ROLE_REQUIRES)  # fmt: skip
    for step in path.steps:
        assert step.module_id in can_take
        assert not any(r.code == pb.REASON_CODE_LANGUAGE_UNLOCK for r in step.reasons)


def test_without_a_locale_the_texts_are_in_the_learners_first_language(demo: Served) -> None:
    no_ladder = ["zh-hsk2-101"]  # so that the path has blockers to word
    path = demo.stub.RecommendPath(
        pb.RecommendPathRequest(learner_id="amina", max_steps=3, exclude_module_ids=no_ladder)
    )
    assert path.locale == "ar" and path.blockers
    match = [r for s in path.steps for r in s.reasons if r.code == pb.REASON_CODE_LANGUAGE_MATCH]
    assert match and all(r.text.startswith("تُدرَّس") for r in match)
    assert all("غير متاحة" in r.text for r in path.blockers)
    zh = demo.stub.RecommendPath(
        pb.RecommendPathRequest(learner_id="amina", max_steps=3, locale="zh-CN", exclude_module_ids=no_ladder)
    )
    assert zh.locale == "zh" and zh.blockers and all("暂时无法学习" in r.text for r in zh.blockers)


def test_a_learner_whose_role_is_out_of_reach_is_not_rejected_when_some_module_is_in_their_language(
    demo: Served,
) -> None:
    """Issue #24: learners of the demo world whose reachable modules were all behind them were
    rejected with FAILED_PRECONDITION; now they get the path's blockers instead (here with the
    Chinese ladder's first module excluded, so that no route through Chinese exists either)."""
    learner = pb.Learner(learner_id="karim", country="MA", languages=["ar", "fr"], target_role_id="live-stream-host")
    demo.stub.UpsertLearner(pb.UpsertLearnerRequest(learner=learner))
    request = pb.RecommendPathRequest(learner_id="karim", locale="fr", exclude_module_ids=["zh-pinyin-101"])
    path = demo.stub.RecommendPath(request)
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


def test_the_tours_learner_without_chinese_listed_reaches_her_role_through_the_chinese_ladder(demo: Served) -> None:
    path = demo.stub.RecommendPath(pb.RecommendPathRequest(learner_id="amina", max_steps=50, locale="fr"))
    assert path.stop_reason == pb.STOP_REASON_ROLE_READY and not path.blockers
    ids = [s.module_id for s in path.steps]
    assert ids.index("zh-hsk2-101") < ids.index("zh-hsk3-101") < ids.index("cnc-operation-101")
