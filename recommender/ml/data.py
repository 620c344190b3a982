"""Training data in columnar numpy form: events indexed against a catalog, sorted by learner
then time, with multi-skill events as CSR (skill_ptr, skill_idx)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from recommender.domain.assessment import AssessmentEvent, to_micros
from recommender.domain.catalog import Catalog
from recommender.domain.learner import Learner
from recommender.kt.sequences import Sequences, build_sequences

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]
MICROS_PER_DAY = 86_400 * 1_000_000


@dataclass(frozen=True)
class EventTable:
    learner_ids: tuple[str, ...]
    item_ids: tuple[str, ...]
    learner: IntArray  # (n,) index into learner_ids
    module: IntArray  # (n,) index into catalog.module_ids
    item: IntArray  # (n,) index into item_ids ("" when the event names no item)
    kind: npt.NDArray[np.int8]  # (n,) domain.assessment.ResultKind, resolved (never unspecified)
    score: FloatArray  # (n,)
    days: FloatArray  # (n,) days since the epoch
    skill_ptr: IntArray  # (n + 1,)
    skill_idx: IntArray  # (n_skill_rows,) catalog skill index
    dropped: int = 0  # events whose module is not in the catalog

    def __len__(self) -> int:
        return len(self.learner)

    def subset(self, mask: npt.NDArray[np.bool_]) -> EventTable:
        """The rows in `mask`, with learners renumbered to those that remain."""
        idx = np.flatnonzero(mask)
        counts = np.diff(self.skill_ptr)[idx]
        starts = self.skill_ptr[idx]
        rows = np.repeat(starts - np.r_[0, np.cumsum(counts)[:-1]], counts) + np.arange(int(counts.sum()))
        kept, learner = np.unique(self.learner[idx], return_inverse=True)
        return EventTable(
            learner_ids=tuple(self.learner_ids[i] for i in kept),
            item_ids=self.item_ids,
            learner=learner.astype(np.int64),
            module=self.module[idx],
            item=self.item[idx],
            kind=self.kind[idx],
            score=self.score[idx],
            days=self.days[idx],
            skill_ptr=np.r_[0, np.cumsum(counts)].astype(np.int64),
            skill_idx=self.skill_idx[rows],
        )

    def expanded(self) -> tuple[IntArray, IntArray]:
        """(event row, skill index) for every skill of every event."""
        counts = np.diff(self.skill_ptr)
        return np.repeat(np.arange(len(self)), counts), self.skill_idx

    def skill_sequences(self, skill_weights: FloatArray | None = None) -> Sequences:
        """One BKT sequence per (learner, skill), each row with its result kind and module (a
        module's learning effect is fitted per skill); flat rows map back to expanded() rows
        through row_of. `skill_weights`: the catalog's (modules, skills) weights
        (Catalog.module_skill_weights); a skill its module does not list counts in full."""
        rows, skills = self.expanded()
        modules = self.module[rows]
        weight = None
        if skill_weights is not None:
            weight = skill_weights[modules, skills]
            weight = np.where(weight > 0, weight, 1.0)
        return build_sequences(
            self.learner[rows], skills, self.score[rows], self.days[rows], self.kind[rows], modules, weight
        )


@dataclass(frozen=True)
class TrainingData:
    catalog: Catalog
    events: EventTable
    learners: Mapping[str, Learner] = field(default_factory=dict)

    def fingerprint(self) -> str:
        import hashlib

        h = hashlib.sha256()
        for array in (self.events.learner, self.events.module, self.events.score, self.events.days):
            h.update(np.ascontiguousarray(array).tobytes())
        h.update(",".join(self.events.learner_ids).encode())
        h.update(",".join(self.catalog.module_ids).encode())
        return h.hexdigest()[:16]


def build_event_table(events: Iterable[AssessmentEvent], catalog: Catalog) -> EventTable:
    learner_index: dict[str, int] = {}
    item_index: dict[str, int] = {"": 0}
    learner, module, item, kind, score, micros = [], [], [], [], [], []
    skill_counts: list[int] = []
    skills: list[int] = []
    dropped = 0
    for e in events:
        m = catalog.module_index.get(e.module_id)
        if m is None:
            dropped += 1
            continue
        ids = e.skill_ids or catalog.modules[e.module_id].skill_ids
        resolved = [catalog.skill_index[s] for s in ids if s in catalog.skill_index]
        if not resolved:
            dropped += 1
            continue
        learner.append(learner_index.setdefault(e.learner_id, len(learner_index)))
        module.append(m)
        item.append(item_index.setdefault(e.item_id, len(item_index)))
        kind.append(int(e.effective_kind))
        score.append(e.score)
        micros.append(to_micros(e.occurred_at))
        skill_counts.append(len(resolved))
        skills.extend(resolved)
    n = len(learner)
    # learners in sorted-id order; rows by (learner, time, input order)
    ids_sorted = sorted(learner_index)
    remap = np.empty(len(ids_sorted), dtype=np.int64)
    for new, lid in enumerate(ids_sorted):
        remap[learner_index[lid]] = new
    learner_arr = remap[np.asarray(learner, dtype=np.int64)] if n else np.zeros(0, dtype=np.int64)
    micros_arr = np.asarray(micros, dtype=np.int64)
    order = np.lexsort((np.arange(n), micros_arr, learner_arr))
    counts = np.asarray(skill_counts, dtype=np.int64)
    ptr = np.r_[0, np.cumsum(counts)].astype(np.int64)
    skill_arr = np.asarray(skills, dtype=np.int64)
    new_counts = counts[order]
    rows = np.concatenate([np.arange(ptr[i], ptr[i + 1]) for i in order]) if n else np.zeros(0, dtype=np.int64)
    items_sorted = [k for k, _ in sorted(item_index.items(), key=lambda kv: kv[1])]
    return EventTable(
        learner_ids=tuple(ids_sorted),
        item_ids=tuple(items_sorted),
        learner=learner_arr[order],
        module=np.asarray(module, dtype=np.int64)[order],
        item=np.asarray(item, dtype=np.int64)[order],
        kind=np.asarray(kind, dtype=np.int8)[order],
        score=np.asarray(score, dtype=np.float64)[order],
        days=(micros_arr[order] / MICROS_PER_DAY).astype(np.float64),
        skill_ptr=np.r_[0, np.cumsum(new_counts)].astype(np.int64),
        skill_idx=skill_arr[rows],
        dropped=dropped,
    )
