"""Cohort JSONL is protobuf's JSON mapping of LearningPath: the direct encoder must give exactly
what json_format gives, for paths with and without steps, model, timestamp, reviews, any locale."""

from __future__ import annotations

import json
import os
from dataclasses import replace
from datetime import timedelta, timezone
from pathlib import Path

import numpy as np
import pytest

from recommender.api.export import (
    STEP_COLUMNS,
    JsonlEncoder,
    concatenate,
    encode_jsonl,
    path_json,
    path_json_via_proto,
    step_rows,
)
from recommender.domain.catalog import build_catalog
from recommender.domain.codec import catalog_parts_from_dict
from recommender.domain.path import LearningPath, StepKind, StopReason
from recommender.domain.profile import SkillState
from recommender.errors import LubanError
from recommender.service.demo import demo_catalog_path
from recommender.service.recommend import PathRequest, Planner
from recommender.simulation.truth import sample_learners
from tests.conftest import T0


def demo_paths() -> list[LearningPath]:
    catalog = build_catalog(*catalog_parts_from_dict(json.loads(demo_catalog_path().read_text(encoding="utf-8"))))
    planner = Planner.build(catalog, None, 0.8, check_after_studies=3, max_module_attempts=3)
    paths = []
    rng = np.random.default_rng(3)
    for i, hidden in enumerate(sample_learners(catalog, 60, rng)):
        learner = hidden.learner
        states = [
            SkillState(
                s,
                float(rng.choice([rng.random(), 0.99])),
                2,
                T0 - timedelta(days=int(rng.integers(0, 400))),
                int(rng.integers(0, 5)),  # 3 or more on a role skill below level: a skill-check step
            )
            for s in rng.choice(catalog.skill_ids, size=int(rng.integers(0, 12)), replace=False)
        ]
        try:
            options = planner.options_for(
                learner, PathRequest(learner.learner_id, 1 + i % 12, locale=("zh", "en", "fr")[i % 3])
            )
            paths.append(
                planner.plan(f"t/{learner.learner_id}", learner, states, options, T0 + timedelta(microseconds=i * 1001))
            )
        except LubanError:
            continue
    assert len(paths) > 40 and any(s.review for p in paths for s in p.steps)
    assert any(s.kind is StepKind.SKILL_CHECK for p in paths for s in p.steps)
    return paths


def test_direct_json_equals_protobuf_json_mapping() -> None:
    paths = demo_paths()
    extra = [
        replace(paths[0], steps=(), stop_reason=StopReason.ROLE_READY, unreachable_skill_ids=("a", "b")),
        replace(paths[1], generated_at=None, model_version="v1", readiness_now=0.0, readiness_after=1.0),
        replace(paths[2], stop_reason=StopReason.REPEATED_FAILURE, blockers=paths[0].steps[0].reasons[:2]),
    ]
    for p in paths + extra:
        assert path_json(p) == path_json_via_proto(p)
    lines = encode_jsonl(paths + extra, True).decode().splitlines()
    expected = [json.dumps(path_json_via_proto(p), ensure_ascii=False, sort_keys=True) for p in paths + extra]
    assert lines == expected


def test_encoder_reuses_shared_steps_across_parts_and_stays_exact() -> None:
    paths = demo_paths()[:10]
    shared = [replace(p, learner_id=f"twin-{i}") for i, p in enumerate(paths)]  # same steps tuples
    # same steps tuple, other fields differing: nothing but the steps may be taken from the cache
    assert paths[0].generated_at is not None
    later = paths[0].generated_at + timedelta(hours=1)
    changed = [
        replace(paths[0], readiness_now=0.123, learner_id="x1"),
        replace(paths[1], model_version="other", generated_at=later),
        replace(paths[2], generated_at=None),
        replace(paths[3], unreachable_skill_ids=("zz",), stop_reason=StopReason.TIME_BUDGET),
    ]
    encoder = JsonlEncoder()
    JsonlEncoder.STEPS_KEPT, kept = 4, JsonlEncoder.STEPS_KEPT  # force evictions too
    try:
        parts = [encoder(paths, True), encoder(shared, False), encoder(changed, False), encoder(paths[::-1], False)]
    finally:
        JsonlEncoder.STEPS_KEPT = kept
    expected = [encode_jsonl(ps, first) for ps, first in ((paths, True), (shared, False), (changed, False),
                                                          (paths[::-1], False))]  # fmt: skip
    assert parts == expected
    assert b'"learner_id": "twin-3"' in parts[1]
    lines = parts[2].decode().splitlines()
    assert [json.loads(x) for x in lines] == [path_json_via_proto(p) for p in changed]


@pytest.mark.parametrize("kernel_copy", [True, False])
def test_concatenate_keeps_every_byte_in_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kernel_copy: bool
) -> None:
    """Parts are joined in the kernel where it can, through a buffer where it cannot (an OSError
    from copy_file_range, e.g. across file systems): the same bytes either way."""
    if not kernel_copy:

        def refuse(*args: object) -> int:
            raise OSError(18, "Invalid cross-device link")

        monkeypatch.setattr(os, "copy_file_range", refuse, raising=False)
    rng = np.random.default_rng(5)
    parts, expected = [], b""
    for i, size in enumerate([0, 1, 3 << 20, 17, 0, (1 << 20) + 5]):
        data = rng.integers(0, 256, size=size, dtype=np.uint8).tobytes()
        part = tmp_path / f"part-{i}"
        part.write_bytes(data)
        parts.append(part)
        expected += data
    out = tmp_path / "out.jsonl"
    out.write_bytes(b"stale output of an earlier run")
    concatenate(out, parts)
    assert out.read_bytes() == expected
    assert not (tmp_path / "out.jsonl.tmp").exists()


def test_step_rows_say_what_kind_of_step_and_which_skills_a_check_assesses() -> None:
    """CSV and Parquet rows carry the step kind and a check's skills (';'-joined)."""
    path = next(p for p in demo_paths() if p.steps and p.steps[0].kind is StepKind.SKILL_CHECK)
    rows = step_rows(path)
    assert rows[0]["kind"] == "skill_check" and rows[0]["module_id"] == ""
    assert rows[0]["check_skill_ids"] == ";".join(path.steps[0].check_skill_ids) != ""
    assert all(r["kind"] == "study" and r["module_id"] and r["check_skill_ids"] == "" for r in rows[1:])
    assert set(rows[0]) == set(STEP_COLUMNS)


def test_names_and_timestamps_are_protobufs_own() -> None:
    """The encoder writes enum names and timestamps without importing protobuf: the same text as
    the generated code's names and Timestamp's JSON mapping."""
    from datetime import UTC, datetime

    from recommender.api import export, mapping

    assert export.STOP_REASON_NAMES == mapping.STOP_REASON_NAMES
    assert export.STEP_KIND_NAMES == mapping.STEP_KIND_NAMES
    assert export.REASON_CODE_NAMES == mapping.REASON_CODE_NAMES
    rng = np.random.default_rng(11)
    moments = [T0, T0.replace(microsecond=0), T0.replace(microsecond=123000), T0.replace(microsecond=5),
               datetime(1969, 12, 31, 23, 59, 59, 999999, tzinfo=UTC), datetime(1970, 1, 1, tzinfo=UTC),
               T0.astimezone(timezone(timedelta(hours=8))), T0.replace(tzinfo=None)]  # fmt: skip
    moments += [T0 + timedelta(microseconds=int(x)) for x in rng.integers(-(10**15), 10**15, size=200)]
    for moment in moments:
        assert export.timestamp_json(moment) == mapping.timestamp_json(moment), moment
