"""Converters from public learning datasets (see ../shared/data/*/PROVENANCE.md) to the generic
event format: `recommender convert {assistments,oulad,junyi} SRC_DIR OUT_DIR` writes events.csv,
catalog.json and, where the dataset has learner features, learners.csv."""

from __future__ import annotations

import csv
import itertools
import json
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from recommender.datasets.formats import EVENT_COLUMNS, LEARNER_COLUMNS, open_text, write_csv
from recommender.domain.catalog import graph_cycle


@dataclass
class ConversionReport:
    dataset: str
    events: int = 0
    learners: int = 0
    skills: int = 0
    modules: int = 0
    roles: int = 0
    notes: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        head = (
            f"{self.dataset}: {self.events} events, {self.learners} learners, {self.skills} skills, "
            f"{self.modules} modules, {self.roles} roles"
        )
        return [head, *("  " + n for n in self.notes)]


def _find(src: Path, *names: str) -> Path:
    for name in names:
        if (src / name).exists():
            return src / name
    raise FileNotFoundError(f"{src}: none of {', '.join(names)} found")


def _write_catalog(out: Path, skills: list[dict[str, Any]], modules: list[dict[str, Any]],
                   roles: list[dict[str, Any]], source: str) -> None:  # fmt: skip
    out.mkdir(parents=True, exist_ok=True)
    document = {"source": source, "skills": skills, "modules": modules, "roles": roles}
    (out / "catalog.json").write_text(json.dumps(document, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")


# ASSISTments 2009 (AKT format) -------------------------------------------------------------
def convert_assistments(src: Path, out: Path) -> ConversionReport:
    """Skills become modules (one per skill, teaching it); problems are items. Rows that repeat
    the previous row's problem with another skill (AKT's multi-skill expansion) are collapsed into
    one event carrying every skill, so no answer leaks into the next prediction. The dataset has
    no authored difficulty, and one derived from its outcomes would carry the results `evaluate`
    holds out into a module feature, so every module gets the middle one."""
    report = ConversionReport("assistments")
    names: dict[str, str] = {}
    attempts: Counter[str] = Counter()
    collapsed = 0

    def events() -> Iterator[dict[str, Any]]:
        nonlocal collapsed
        pending: dict[str, Any] | None = None
        with open_text(_find(src, "interactions.csv.gz", "interactions.csv")) as handle:
            for row in csv.DictReader(handle):
                skill = f"as-{row['skill_id']}"
                names[skill] = row["skill_name"]
                step = int(row["step"])
                same = (
                    pending is not None
                    and pending["learner_id"] == f"as-{row['user_id']}"
                    and pending["item_id"] == f"p{row['problem_id']}"
                    and pending["score"] == float(row["correct"])
                    and pending["_last_step"] == step - 1
                    and skill != pending["_skills"][-1]
                )
                if same:
                    assert pending is not None
                    pending["_skills"].append(skill)
                    pending["_last_step"] = step
                    collapsed += 1
                    continue
                if pending is not None:
                    yield _finish(pending)
                pending = {
                    "event_id": f"as-{row['user_id']}-{step}",
                    "learner_id": f"as-{row['user_id']}",
                    "module_id": f"as-m-{row['skill_id']}",
                    "item_id": f"p{row['problem_id']}",
                    "score": float(row["correct"]),
                    "step": step,
                    "_skills": [skill],
                    "_last_step": step,
                }
        if pending is not None:
            yield _finish(pending)

    def _finish(event: dict[str, Any]) -> dict[str, Any]:
        skills = list(dict.fromkeys(event.pop("_skills")))
        event.pop("_last_step")
        event["skill_ids"] = ";".join(skills)
        for s in skills:
            attempts[s] += 1
        return event

    learners: set[str] = set()

    def counted() -> Iterator[dict[str, Any]]:
        for e in events():
            learners.add(e["learner_id"])
            yield e

    report.events = write_csv(out / "events.csv", EVENT_COLUMNS, counted())
    report.learners = len(learners)
    skills = [{"skill_id": s, "names": {"en": names[s]}, "domain": "math"} for s in sorted(names)]
    modules = [
        {
            "module_id": f"as-m-{s.removeprefix('as-')}",
            "titles": {"en": names[s]},
            "skills": [{"skill_id": s, "weight": 1.0}],
            "languages": ["en"],
            "track": "math",
            "difficulty": 0.5,
            "estimated_minutes": 30,
        }
        for s in sorted(names)
    ]
    total = sum(attempts.values())
    roles = [
        {
            "role_id": "as-math-fluency",
            "names": {"en": "Grade-level math fluency"},
            "industry": "education",
            "requirements": [
                {"skill_id": s, "level": 0.8, "weight": round(attempts[s] / total, 6) or 1e-6} for s in sorted(names)
            ],
        }
    ]
    _write_catalog(out, skills, modules, roles, "ASSISTments 2009-2010 skill builder (AKT-processed)")
    report.skills, report.modules, report.roles = len(skills), len(modules), len(roles)
    report.notes.append(f"collapsed {collapsed} multi-skill rows into their problem's event")
    return report


# OULAD --------------------------------------------------------------------------------------
_MONTH = {"B": 2, "J": 10}
_LEARNER_FEATURES = [
    "gender", "region", "highest_education", "imd_band", "age_band", "num_of_prev_attempts", "studied_credits",
    "disability",
]  # fmt: skip


def _presentation_start(code: str) -> datetime:
    return datetime(int(code[:4]), _MONTH.get(code[4:], 1), 1, tzinfo=UTC)


def convert_oulad(src: Path, out: Path) -> ConversionReport:
    """Each enrolment (student x module presentation) is a learner with its demographics as
    features (never the final result); each assessment is a module teaching its course's skill
    and its type's skill; within a presentation an assessment requires the previous one of its type."""
    report = ConversionReport("oulad")
    assessments: dict[str, dict[str, str]] = {}
    with open_text(_find(src, "assessments.csv")) as handle:
        for row in csv.DictReader(handle):
            assessments[row["id_assessment"]] = row
    by_presentation: dict[tuple[str, str, str], list[dict[str, str]]] = defaultdict(list)
    for row in assessments.values():
        by_presentation[(row["code_module"], row["code_presentation"], row["assessment_type"])].append(row)
    prereq: dict[str, str] = {}
    for rows in by_presentation.values():
        ordered = sorted(rows, key=lambda r: (float(r["date"] or 1e9), int(r["id_assessment"])))
        for before, after in itertools.pairwise(ordered):
            prereq[after["id_assessment"]] = before["id_assessment"]

    skipped: Counter[str] = Counter()

    def module_id(a: dict[str, str]) -> str:
        return f"ou-{a['code_module']}-{a['code_presentation']}-{a['id_assessment']}"

    def events() -> Iterator[dict[str, Any]]:
        with open_text(_find(src, "studentAssessment.csv.gz", "studentAssessment.csv")) as handle:
            for row in csv.DictReader(handle):
                a = assessments.get(row["id_assessment"])
                if a is None:
                    skipped["unknown assessment"] += 1
                    continue
                if row["score"] in ("", "?"):
                    skipped["no score"] += 1
                    continue
                if row["is_banked"] == "1":
                    skipped["banked from an earlier presentation"] += 1
                    continue
                submitted = _presentation_start(a["code_presentation"]) + timedelta(
                    days=float(row["date_submitted"] or 0)
                )
                yield {
                    "event_id": f"ou-{row['id_assessment']}-{row['id_student']}",
                    "learner_id": f"ou-{a['code_module']}-{a['code_presentation']}-{row['id_student']}",
                    "module_id": module_id(a),
                    "score": min(max(float(row["score"]) / 100.0, 0.0), 1.0),
                    "occurred_at": submitted.isoformat(),
                }

    report.events = write_csv(out / "events.csv", EVENT_COLUMNS, events())

    def learners() -> Iterator[dict[str, Any]]:
        with open_text(_find(src, "studentInfo.csv.gz", "studentInfo.csv")) as handle:
            for row in csv.DictReader(handle):
                record: dict[str, Any] = {
                    "learner_id": f"ou-{row['code_module']}-{row['code_presentation']}-{row['id_student']}",
                    "cohort_id": row["code_presentation"],
                    "country": "GB",
                    "languages": "en",
                    "program": row["code_module"],
                    "target_role_id": f"ou-course-{row['code_module']}",
                }
                record.update({k: row[k] for k in _LEARNER_FEATURES if row.get(k) not in (None, "", "?")})
                yield record

    report.learners = write_csv(out / "learners.csv", LEARNER_COLUMNS + _LEARNER_FEATURES, learners())
    courses = sorted({a["code_module"] for a in assessments.values()})
    types = sorted({a["assessment_type"] for a in assessments.values()})
    skills = [{"skill_id": f"ou-{c}", "names": {"en": f"Course {c}"}, "domain": "oulad"} for c in courses] + [
        {"skill_id": f"ou-{c}-{t}", "names": {"en": f"Course {c}: {t}"}, "domain": "oulad"}
        for c in courses
        for t in types
    ]
    modules = [
        {
            "module_id": module_id(a),
            "titles": {
                "en": f"{a['code_module']} {a['code_presentation']} {a['assessment_type']} {a['id_assessment']}"
            },
            "skills": [
                {"skill_id": f"ou-{a['code_module']}-{a['assessment_type']}", "weight": 1.0},
                {"skill_id": f"ou-{a['code_module']}", "weight": 0.5},
            ],
            "prerequisite_module_ids": [module_id(assessments[prereq[a["id_assessment"]]])]
            if a["id_assessment"] in prereq
            else [],
            "languages": ["en"],
            "track": a["code_module"],
            "difficulty": 0.7 if a["assessment_type"] == "Exam" else 0.5,
            "estimated_minutes": 180 if a["assessment_type"] == "Exam" else 90,
        }
        for a in sorted(assessments.values(), key=lambda r: int(r["id_assessment"]))
    ]
    roles = [
        {
            "role_id": f"ou-course-{c}",
            "names": {"en": f"Pass course {c}"},
            "industry": "higher-education",
            "requirements": [{"skill_id": f"ou-{c}", "level": 0.7, "weight": 1.0}]
            + [{"skill_id": f"ou-{c}-{t}", "level": 0.7, "weight": 0.5} for t in types],
        }
        for c in courses
    ]
    _write_catalog(out, skills, modules, roles, "Open University Learning Analytics Dataset (OULAD)")
    report.skills, report.modules, report.roles = len(skills), len(modules), len(roles)
    report.notes += [f"skipped {n} rows: {why}" for why, n in sorted(skipped.items())]
    return report


# Junyi ------------------------------------------------------------------------------------
def break_cycles(nodes: list[str], edges: set[tuple[str, str]], note: Callable[[str], None]) -> set[tuple[str, str]]:
    """Remove self-loops, then one edge per remaining cycle (the edge that closes it, found by a
    deterministic depth-first search), reporting each removal."""
    kept = set()
    for prerequisite, exercise in sorted(edges):
        if prerequisite == exercise:
            note(f"removed self-loop {exercise} -> {exercise}")
        else:
            kept.add((prerequisite, exercise))
    while True:
        cycle = _find_cycle(nodes, kept)
        if not cycle:
            return kept
        closing = (cycle[-1], cycle[0])
        kept.discard(closing)
        note(f"broke cycle {' -> '.join([*cycle, cycle[0]])} by removing {closing[0]} -> {closing[1]}")


def _find_cycle(nodes: list[str], edges: set[tuple[str, str]]) -> list[str]:
    successors: dict[str, list[str]] = {n: [] for n in nodes}
    for a, b in edges:
        successors[a].append(b)
    return graph_cycle(successors)


def convert_junyi(src: Path, out: Path) -> ConversionReport:
    """Each exercise is a module teaching its own skill, taught in Chinese; prerequisites come from
    the knowledge map with self-loops and cycles broken and reported; each topic is a role."""
    report = ConversionReport("junyi")
    rows: list[dict[str, str]] = []
    with open_text(_find(src, "junyi_Exercise_table.csv")) as handle:
        for row in csv.DictReader(handle):
            if any(r["name"] == row["name"] for r in rows):
                report.notes.append(f"dropped a repeated row of exercise {row['name']} (first one kept)")
                continue
            rows.append(row)
    names = [r["name"] for r in rows]
    known = set(names)
    edges: set[tuple[str, str]] = set()
    for r in rows:
        for p in (x.strip() for x in (r["prerequisites"] or "").split(",")):
            if p and p in known:
                edges.add((p, r["name"]))
            elif p:
                report.notes.append(f"dropped unknown prerequisite {p} of {r['name']}")
    kept = break_cycles(names, edges, report.notes.append)
    prereqs: dict[str, list[str]] = defaultdict(list)
    for p, e in sorted(kept):
        prereqs[e].append(p)

    idents: dict[str, str] = {}
    for name in [*names, *(f"topic-{r['topic'] or 'misc'}" for r in rows)]:
        if name in idents:
            continue
        base = "jy-" + "".join(c if c.isascii() and (c.isalnum() or c in "._-") else "_" for c in name)
        candidate, n = base, 1
        while candidate in idents.values():  # two names that sanitize alike stay distinct
            n += 1
            candidate = f"{base}-{n}"
        idents[name] = candidate

    def ident(name: str) -> str:
        return idents[name]

    skills = [
        {"skill_id": ident(r["name"]), "names": {"zh": r["pretty_display_name"], "en": r["name"]}, "domain": r["area"]}
        for r in rows
    ]
    depth: dict[str, int] = {}

    def level(name: str) -> int:
        if name not in depth:
            depth[name] = 0
            depth[name] = 1 + max((level(p) for p in prereqs.get(name, [])), default=-1)
        return depth[name]

    for name in names:
        level(name)
    deepest = max(depth.values()) or 1
    modules = [
        {
            "module_id": ident(r["name"]),
            "titles": {"zh": r["pretty_display_name"], "en": r["name"]},
            "skills": [{"skill_id": ident(r["name"]), "weight": 1.0}],
            "prerequisite_module_ids": [ident(p) for p in prereqs.get(r["name"], [])],
            "languages": ["zh"],
            "track": r["area"] or "math",
            "difficulty": round(0.2 + 0.7 * depth[r["name"]] / deepest, 3),
            "estimated_minutes": 30,
        }
        for r in rows
    ]
    topics: dict[str, list[str]] = defaultdict(list)
    for r in rows:
        topics[r["topic"] or "misc"].append(ident(r["name"]))
    roles = [
        {
            "role_id": ident("topic-" + topic),
            "names": {"en": f"Junyi topic {topic}"},
            "industry": "math",
            "requirements": [{"skill_id": s, "level": 0.8, "weight": 1.0} for s in sorted(members)],
        }
        for topic, members in sorted(topics.items())
    ]
    _write_catalog(out, skills, modules, roles, "Junyi Academy 2015 exercise table (knowledge map)")
    report.skills, report.modules, report.roles = len(skills), len(modules), len(roles)
    report.notes.insert(0, f"{len(edges)} prerequisite edges, {len(kept)} kept")
    return report


CONVERTERS: dict[str, Callable[[Path, Path], ConversionReport]] = {
    "assistments": convert_assistments,
    "oulad": convert_oulad,
    "junyi": convert_junyi,
}
