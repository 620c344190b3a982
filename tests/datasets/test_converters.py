"""Each converter on a small excerpt of its real dataset (tests/fixtures/README.md)."""

from __future__ import annotations

import csv
import itertools
import json
from pathlib import Path

from recommender.datasets.converters import convert_assistments, convert_junyi, convert_oulad
from recommender.datasets.formats import BadRow, read_events, read_learners
from recommender.domain.catalog import build_catalog
from recommender.domain.codec import catalog_parts_from_dict

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


def rows(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def catalog_of(out: Path):  # type: ignore[no-untyped-def]
    return build_catalog(*catalog_parts_from_dict(json.loads((out / "catalog.json").read_text(encoding="utf-8"))))


def test_assistments_collapses_multi_skill_rows(tmp_path: Path) -> None:
    report = convert_assistments(FIXTURES / "assistments", tmp_path)
    events = rows(tmp_path / "events.csv")
    raw = rows(FIXTURES / "assistments" / "interactions.csv")
    assert report.events == len(events) < len(raw)
    first = events[0]
    assert first["learner_id"] == "as-14" and first["item_id"] == "p93383"
    assert first["skill_ids"] == "as-2;as-44", "the two rows of problem 93383 are one event with both skills"
    assert first["score"] == "0.0" and first["step"] == "0"
    assert events[1]["item_id"] == "p93407" and events[1]["score"] == "1.0"
    collapsed = len(raw) - len(events)
    assert f"collapsed {collapsed} multi-skill rows" in report.notes[0]
    # consecutive events never repeat a problem with the same outcome: no answer leaks forward
    for a, b in itertools.pairwise(events):
        if a["learner_id"] == b["learner_id"]:
            assert (a["item_id"], a["score"]) != (b["item_id"], b["score"]) or a["skill_ids"] == b["skill_ids"]
    catalog = catalog_of(tmp_path)
    parsed = [e for e in read_events(tmp_path / "events.csv") if not isinstance(e, BadRow)]
    assert len(parsed) == len(events)
    assert all(e.module_id in catalog.modules for _, e in parsed)
    assert {"as-14", "as-21825"} == {e.learner_id for _, e in parsed}
    assert {m.difficulty for m in catalog.modules.values()} == {0.5}, "no difficulty from the outcomes evaluated"


def test_oulad_events_learners_and_prerequisites(tmp_path: Path) -> None:
    report = convert_oulad(FIXTURES / "oulad", tmp_path)
    events = [e for _, e in (x for x in read_events(tmp_path / "events.csv") if not isinstance(x, BadRow))]
    assert report.events == len(events) > 0
    e = events[0]
    assert e.module_id == "ou-AAA-2013J-1752" and e.learner_id == "ou-AAA-2013J-11391"
    assert e.score == 0.78 and e.occurred_at.isoformat() == "2013-10-19T00:00:00+00:00"
    learners = {
        x.learner_id: x for _, x in (y for y in read_learners(tmp_path / "learners.csv") if not isinstance(y, BadRow))
    }
    ana = learners["ou-AAA-2013J-11391"]
    assert ana.program == "AAA" and ana.cohort_id == "2013J" and ana.attributes["region"] == "East Anglian Region"
    assert "final_result" not in ana.attributes, "the outcome is never a feature"
    catalog = catalog_of(tmp_path)
    assert catalog.modules["ou-AAA-2013J-1753"].prerequisite_module_ids == ("ou-AAA-2013J-1752",)
    assert catalog.modules["ou-AAA-2013J-1757"].prerequisite_module_ids == (), "the exam has no earlier exam"


def test_junyi_breaks_self_loops_and_cycles_explicitly(tmp_path: Path) -> None:
    report = convert_junyi(FIXTURES / "junyi", tmp_path)
    notes = "\n".join(report.notes)
    assert "removed self-loop proportions_1 -> proportions_1" in notes
    assert "removed self-loop number_sense_length_l1 -> number_sense_length_l1" in notes
    assert "broke cycle" in notes and "simplifying_radicals" in notes
    assert "dropped unknown prerequisite square_roots_2 of simplifying_radicals" in notes
    catalog = catalog_of(tmp_path)  # build_catalog rejects cycles: this passing proves none is left
    assert catalog.modules["jy-subtraction_1"].prerequisite_module_ids == ("jy-addition_1",)
    assert len(catalog.modules) == 7 and report.events == 0
