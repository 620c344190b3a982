"""`recommender simulate --family NAME | --families all|tuning|held-out`: the simulator over world
families (simulation/families.py), one row per family, under issue #20's protocol
(`FAMILY_PROTOCOL`: a placement test before adaptive paths, a syllabus that retakes a module
below the pass mark up to three attempts).

Per family: adaptive, syllabus and oracle on the same learners, spread over `worlds` worlds of
the family (one world's catalog and module effects are a single draw, and results move with it),
the mean modules to true readiness (censored at the cap), the ratio adaptive / syllabus with its
paired bootstrap interval, and the adaptive policy's prerequisite violations. With `history`, a
model trained on that many past learners of each world (each with the placement test, then a
prefix of their syllabus) plans a second adaptive run on the same learners, beside the untrained
one. The summary reads the held-out families only: they were never looked at to choose anything.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from recommender.ml.train import TrainConfig
from recommender.service.simulate import (
    FAMILY_PROTOCOL,
    PolicyResult,
    SimulationReport,
    paired_ratio_interval,
    simulate,
)
from recommender.simulation.families import (
    ConceptGraph,
    RandomDag,
    WorldFamily,
    build_world,
    default_concept_graph_path,
    read_concept_graph,
    sample_family_learners,
)

FAMILY_POLICIES = ("adaptive", "syllabus", "oracle")
DEFAULT_WORLDS = 4


@dataclass(frozen=True)
class FamilyRow:
    """One family's results; modules are means per learner, ratios over the syllabus's mean."""

    family: WorldFamily
    report: SimulationReport  # adaptive, syllabus and oracle, no model
    trained: SimulationReport | None = None  # adaptive with a model trained on past learners

    def modules(self, policy: str) -> float:
        return self.report.results[policy].modules_mean()

    def ratio(self, policy: str = "adaptive") -> float:
        """nan when the syllabus needed no module (every learner ready from the start)."""
        baseline = self.modules("syllabus")
        return self._source(policy).modules_mean() / baseline if baseline else float("nan")

    def ratio_interval(self, policy: str = "adaptive") -> tuple[float, float]:
        """95 % paired bootstrap interval of the ratio (the same learners under both policies)."""
        ours = self._source(policy).modules
        return paired_ratio_interval(ours, self.report.results["syllabus"].modules, self.report.seed)

    def trained_interval(self) -> tuple[float, float]:
        """95 % paired bootstrap interval of trained / untrained adaptive modules: an interval
        holding 1 says the model made no difference these learners can show."""
        return paired_ratio_interval(
            self._source("trained").modules, self.report.results["adaptive"].modules, self.report.seed
        )

    def _source(self, policy: str) -> PolicyResult:
        if policy == "trained":
            if self.trained is None:
                raise ValueError("no trained run")
            return self.trained.results["adaptive"]
        return self.report.results[policy]

    def to_json(self) -> dict[str, Any]:
        f = self.family
        doc: dict[str, Any] = {
            "family": f.name,
            "split": f.split,
            "informative": f.informative,
            "description": f.description,
            "modules": {p: self.modules(p) for p in FAMILY_POLICIES},
            "reached_share": {p: self.report.to_json()["policies"][p]["reached_share"] for p in FAMILY_POLICIES},
            "adaptive_vs_syllabus_ratio": self.ratio(),
            "adaptive_vs_syllabus_ratio_ci95": list(self.ratio_interval()),
            "oracle_vs_syllabus_ratio": self.ratio("oracle"),
            "prerequisite_violations": {p: self.report.results[p].violations for p in FAMILY_POLICIES},
            "report": self.report.to_json(),
        }
        if self.trained is not None:
            doc |= {
                "trained_modules": self.trained.results["adaptive"].modules_mean(),
                "trained_vs_syllabus_ratio": self.ratio("trained"),
                "trained_vs_syllabus_ratio_ci95": list(self.ratio_interval("trained")),
                "trained_vs_untrained_ratio": self.trained.results["adaptive"].modules_mean()
                / self.modules("adaptive"),
                "trained_vs_untrained_ratio_ci95": list(self.trained_interval()),
                "trained_model_version": self.trained.model_version,
                "trained_report": self.trained.to_json(),
            }
        return doc


@dataclass(frozen=True)
class FamilyTable:
    rows: tuple[FamilyRow, ...]
    learners: int
    max_modules: int
    seed: int
    history: int = 0
    worlds: int = 1

    def held_out(self) -> list[FamilyRow]:
        return [r for r in self.rows if r.family.split == "held_out"]

    def summary(self) -> dict[str, Any]:
        """Over the held-out families: the mean ratio, the worst family, the mean over those whose
        module scores are informative; with a history, on how many families (all of them) the
        trained service needed fewer modules than the untrained one."""
        held = self.held_out()
        informative = [r for r in held if r.family.informative]
        worst = max(held, key=lambda r: r.ratio(), default=None)
        doc: dict[str, Any] = {
            "held_out_mean_ratio": float(np.mean([r.ratio() for r in held])) if held else None,
            "held_out_worst": {"family": worst.family.name, "ratio": worst.ratio()} if worst else None,
            "held_out_informative_mean_ratio": (
                float(np.mean([r.ratio() for r in informative])) if informative else None
            ),
        }
        if self.history:
            better = [r.family.name for r in self.rows if r.trained and r.ratio("trained") < r.ratio()]
            doc["trained_fewer_modules"] = {"families": better, "of": len(self.rows)}
            # where the paired interval excludes 1: a difference the learners show, either way
            intervals = {r.family.name: r.trained_interval() for r in self.rows if r.trained}
            doc["trained_clearly_fewer"] = [name for name, (_, high) in intervals.items() if high < 1]
            doc["trained_clearly_more"] = [name for name, (low, _) in intervals.items() if low > 1]
        return doc

    def to_json(self) -> dict[str, Any]:
        return {
            "learners": self.learners,
            "max_modules": self.max_modules,
            "seed": self.seed,
            "history_learners": self.history,
            "worlds_per_family": self.worlds,
            "protocol": {
                "placement_items": FAMILY_PROTOCOL.placement_items,
                "syllabus_attempts": FAMILY_PROTOCOL.syllabus_attempts,
                "pass_mark": FAMILY_PROTOCOL.pass_mark,
            },
            "families": [r.to_json() for r in self.rows],
            "summary": self.summary(),
        }

    def table(self) -> str:
        trained = self.history > 0
        head = (
            f"{'family':<14}{'split':<10}{'inform.':>8}{'adaptive':>10}{'syllabus':>10}{'oracle':>8}"
            f"{'adapt/syll (95% CI)':>24}{'orac/syll':>11}{'viol.':>7}"
            + (f"{'trained':>9}{'train/syll (95% CI)':>24}{'train/untr. (95% CI)':>24}" if trained else "")
        )
        lines = [
            f"{len(self.rows)} world families: {self.learners} learners in {self.worlds} worlds each, "
            f"cap {self.max_modules} modules, "
            f"seed {self.seed}; placement {FAMILY_PROTOCOL.placement_items} items per role skill, syllabus up to "
            f"{FAMILY_PROTOCOL.syllabus_attempts} attempts below {FAMILY_PROTOCOL.pass_mark:g}"
            + (f"; trained on {self.history} past learners" if trained else ""),
            head,
        ]

        def interval(row: FamilyRow, policy: str) -> str:
            low, high = row.ratio_interval(policy)
            return f"{row.ratio(policy):.2f} ({low:.2f}-{high:.2f})"

        for row in self.rows:
            line = (
                f"{row.family.name:<14}{row.family.split.replace('_', '-'):<10}"
                f"{'yes' if row.family.informative else 'no':>8}"
                f"{row.modules('adaptive'):>10.1f}{row.modules('syllabus'):>10.1f}{row.modules('oracle'):>8.1f}"
                f"{interval(row, 'adaptive'):>24}{row.ratio('oracle'):>11.2f}"
                f"{row.report.results['adaptive'].violations:>7d}"
            )
            if trained and row.trained is not None:
                trained_modules = row.trained.results["adaptive"].modules_mean()
                low, high = row.trained_interval()
                versus = f"{trained_modules / row.modules('adaptive'):.2f} ({low:.2f}-{high:.2f})"
                line += f"{trained_modules:>9.1f}{interval(row, 'trained'):>24}{versus:>24}"
            lines.append(line)
        s = self.summary()
        if s["held_out_mean_ratio"] is not None:
            worst = s["held_out_worst"]
            lines.append(f"held-out families, mean adaptive/syllabus: {s['held_out_mean_ratio']:.2f}")
            lines.append(f"worst held-out family: {worst['family']} ({worst['ratio']:.2f})")
            informative = s["held_out_informative_mean_ratio"]
            lines.append(
                "held-out families with informative scores, mean adaptive/syllabus: "
                + (f"{informative:.2f}" if informative is not None else "none")
            )
        if trained:
            better = s["trained_fewer_modules"]
            lines.append(
                f"trained service needs fewer modules than the untrained one on {len(better['families'])} of "
                f"{better['of']} families; clearly fewer (interval below 1) on "
                f"{', '.join(s['trained_clearly_fewer']) or 'none'}, clearly more on "
                f"{', '.join(s['trained_clearly_more']) or 'none'}"
            )
        return "\n".join(lines)


def family_key(family: WorldFamily) -> int:
    """A stable number per family, so each family's draws differ under one seed."""
    return zlib.crc32(family.name.encode())


def simulate_families(
    families: Sequence[WorldFamily],
    *,
    learners: int,
    max_modules: int,
    seed: int,
    history: int = 0,
    worlds: int = DEFAULT_WORLDS,
    graph: ConceptGraph | None = None,
    workdir: Path | None = None,
    progress: Callable[[int], None] | None = None,
    train_config: TrainConfig | None = None,
) -> FamilyTable:
    """Per family, `learners` learners spread evenly over `worlds` worlds (each drawn from `seed`),
    under every family policy and, with `history`, the adaptive policy again with a model trained
    on that many past learners of each world (with `train_config`, default TrainConfig()).
    `graph`: the prerequisite graph of the Junyi families (default: the shipped excerpt)."""
    if worlds < 1 or learners < 1:
        raise ValueError("learners and worlds must be >= 1")
    if graph is None and any(not isinstance(f.graph, RandomDag) for f in families):
        graph = read_concept_graph(default_concept_graph_path())
    rows: list[FamilyRow] = []
    for family in families:
        key = family_key(family)
        reports: list[SimulationReport] = []
        trained: list[SimulationReport] = []
        for w in range(min(worlds, learners)):
            count = learners // worlds + (1 if w < learners % worlds else 0)
            world = build_world(family, np.random.default_rng([seed, 99, key, w]), graph)
            cohort = sample_family_learners(
                family, world, count, np.random.default_rng([seed, 5, key, w]), prefix=f"sim-w{w}"
            )
            report = simulate(
                world.catalog, cohort, world_name=family.name, seed=seed, max_modules=max_modules,
                policies=FAMILY_POLICIES, workdir=workdir, progress=progress, world=world, protocol=FAMILY_PROTOCOL,
            )  # fmt: skip
            reports.append(report)
            if history:
                past = sample_family_learners(
                    family, world, history, np.random.default_rng([seed, 6, key, w]), prefix=f"past-w{w}"
                )
                with_model = simulate(
                    world.catalog, cohort, world_name=family.name, seed=seed, max_modules=max_modules,
                    policies=("adaptive",), workdir=workdir, progress=progress, history=past, world=world,
                    protocol=FAMILY_PROTOCOL, train_config=train_config,
                )  # fmt: skip
                trained.append(with_model)
        rows.append(FamilyRow(family, merge_reports(reports), merge_reports(trained) if trained else None))
    return FamilyTable(tuple(rows), learners, max_modules, seed, history, min(worlds, learners))


def merge_reports(reports: Sequence[SimulationReport]) -> SimulationReport:
    """Several worlds' reports (same policies, cap and seed) as one over all their learners: the
    per-learner lists joined in world order, counts summed, curves averaged per learner; the
    model versions (one per world) joined by commas."""
    first = reports[0]
    results: dict[str, PolicyResult] = {}
    for policy in first.results:
        parts = [r.results[policy] for r in reports]
        merged = PolicyResult(policy, model_version=",".join(p.model_version for p in parts if p.model_version))
        for part in parts:
            merged.modules += part.modules
            merged.checks += part.checks
            merged.minutes += part.minutes
            merged.reached += part.reached
            merged.gains += part.gains
            merged.tracking_errors += part.tracking_errors
            merged.tracking_biases += part.tracking_biases
            merged.traces += part.traces
            merged.placement_items += part.placement_items
            merged.violations += part.violations
            merged.stopped_short += part.stopped_short
        weights = np.array([len(p.modules) for p in parts], dtype=np.float64)
        curves = np.array([p.curve for p in parts], dtype=np.float64)
        merged.curve = (weights @ curves / weights.sum()).tolist() if weights.sum() else []
        results[policy] = merged
    versions = ",".join(r.model_version for r in reports if r.model_version)
    return replace(
        first, learners=sum(r.learners for r in reports), results=results, model_version=versions,
    )  # fmt: skip
