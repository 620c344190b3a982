"""Per-(learner, skill) response sequences in a step-major layout, so BKT filtering and EM over
every sequence at once is one loop over steps with vectorized work inside.

Sequences are sorted by length, longest first; at step t the active sequences are 0..n_active[t]-1
and their responses sit at flat[offset[t] : offset[t] + n_active[t]].
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np
import numpy.typing as npt

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]
MODULE_ASSESSMENT, PRACTICE, CHECK = 1, 2, 3  # domain.assessment.ResultKind values


@dataclass(frozen=True)
class Sequences:
    skill: IntArray  # (n_seq,) skill index of each sequence
    learner: IntArray  # (n_seq,) learner index of each sequence
    n_active: IntArray  # (T,) sequences still running at step t
    offset: IntArray  # (T + 1,)
    obs: FloatArray  # (n_rows,) score in [0, 1], step-major
    gap_days: FloatArray  # (n_rows,) days since the sequence's previous response (0 at its start)
    row_of: IntArray  # (n_rows,) the input row each flat position came from
    # (n_rows,) domain.assessment.ResultKind, resolved: 1 module assessment, 2 practice, 3 check
    kind: npt.NDArray[np.int8]
    # (n_rows,) the module of each module assessment's (module, skill) pair, an index into
    # pair_module / pair_skill; -1 for item results and when modules are not given
    pair: IntArray
    pair_module: IntArray  # (n_pairs,) the pair's module index
    pair_skill: IntArray  # (n_pairs,) the pair's skill index
    # (n_rows,) the skill's weight in the module of a module assessment (bkt.apply_result's
    # `weight`), 1 for item results; None: every weight 1
    weight: FloatArray | None = None
    # (n_rows,) rows whose evidence is not read (a module score that does not tell mastered from
    # not): their learning step still applies; None: every row's is read
    silent: npt.NDArray[np.bool_] | None = None

    @property
    def steps(self) -> int:
        return len(self.n_active)

    def at(self, t: int) -> slice:
        return slice(int(self.offset[t]), int(self.offset[t]) + int(self.n_active[t]))

    @cached_property
    def item(self) -> npt.NDArray[np.bool_]:
        """Item results (practice or check): they have emissions of their own."""
        return np.asarray(self.kind != MODULE_ASSESSMENT)

    @cached_property
    def learns_before(self) -> npt.NDArray[np.bool_]:
        """Module assessments: the learning step comes before their evidence."""
        return np.asarray(self.kind == MODULE_ASSESSMENT)

    @cached_property
    def learns_after(self) -> npt.NDArray[np.bool_]:
        """Practice items: the learning step comes after their evidence."""
        return np.asarray(self.kind == PRACTICE)

    @cached_property
    def taught_item(self) -> npt.NDArray[np.bool_]:
        """Item results on a skill a module assessment earlier in the sequence taught (kt.bkt's
        studied pair of item emissions); placement-like items, before any study, are the rest."""
        taught = np.zeros(len(self.obs), dtype=bool)
        seen = np.zeros(len(self.skill), dtype=bool)
        module = self.learns_before
        for t in range(self.steps):
            n, sl = int(self.n_active[t]), self.at(t)
            taught[sl] = seen[:n]
            seen[:n] |= module[sl]
        return np.asarray(taught & self.item)

    @cached_property
    def row_weight(self) -> FloatArray:
        """Each flat row's weight (all 1 when none were given)."""
        return np.ones(len(self.obs)) if self.weight is None else self.weight

    @cached_property
    def pair_weight(self) -> FloatArray:
        """Each (module, skill) pair's weight: the skill's weight in the module."""
        weights = np.ones(len(self.pair_skill))
        rows = self.pair >= 0
        weights[self.pair[rows]] = self.row_weight[rows]
        return weights

    @cached_property
    def row_sequence(self) -> IntArray:
        """The sequence of each flat row (rows are step-major: sequences 0..n_active[t]-1 at step t)."""
        if not self.steps:
            return np.zeros(0, np.int64)
        return np.concatenate([np.arange(int(n)) for n in self.n_active]).astype(np.int64)

    @cached_property
    def row_learner(self) -> IntArray:
        """The learner index of each flat row."""
        return self.learner[self.row_sequence]

    @cached_property
    def row_skill(self) -> IntArray:
        """The skill of each flat row: computed once, read by every EM iteration and filter pass."""
        return self.skill[self.row_sequence]


def build_sequences(
    learner: IntArray,
    skill: IntArray,
    score: FloatArray,
    days: FloatArray,
    kind: npt.NDArray[np.integer] | None = None,
    module: IntArray | None = None,
    weight: FloatArray | None = None,
) -> Sequences:
    """Rows must already be in time order within each learner (ties keep input order). `kind`:
    each row's resolved ResultKind (default: every row a module assessment); `module`: each row's
    module index, so a module's own learning effect per skill can be fitted; `weight`: each row's
    skill weight in its module (default 1; item results count 1 whatever is given)."""
    n = len(learner)
    if n == 0:
        empty = np.zeros(0, dtype=np.int64)
        return Sequences(
            empty, empty, empty, np.zeros(1, dtype=np.int64), np.zeros(0), np.zeros(0), empty,
            np.zeros(0, dtype=np.int8), empty, empty, empty,
        )  # fmt: skip
    order = np.lexsort((np.arange(n), skill, learner))  # group by (learner, skill), keep time order
    l_sorted, s_sorted = learner[order], skill[order]
    starts = np.flatnonzero(np.r_[True, (l_sorted[1:] != l_sorted[:-1]) | (s_sorted[1:] != s_sorted[:-1])])
    lengths = np.diff(np.r_[starts, n])
    by_length = np.argsort(-lengths, kind="stable")
    starts, lengths = starts[by_length], lengths[by_length]
    steps = int(lengths[0])
    # lengths are descending, so the sequences longer than t are a prefix of them
    n_active = np.searchsorted(-lengths, -np.arange(steps), side="left").astype(np.int64)
    offset = np.r_[0, np.cumsum(n_active)].astype(np.int64)
    # flat position (t, i) -> sorted row starts[i] + t
    t_index = np.repeat(np.arange(steps), n_active)
    i_index = np.concatenate([np.arange(k) for k in n_active])
    sorted_rows = starts[i_index] + t_index
    rows = order[sorted_rows]
    prev_days = np.where(t_index > 0, days[order[np.maximum(sorted_rows - 1, 0)]], days[rows])
    kinds = np.full(n, MODULE_ASSESSMENT, dtype=np.int8) if kind is None else np.asarray(kind, dtype=np.int8)
    pair = np.full(len(rows), -1, dtype=np.int64)
    pair_module = pair_skill = np.zeros(0, dtype=np.int64)
    studied = kinds[rows] == MODULE_ASSESSMENT
    if module is not None and studied.any():
        width = int(skill.max()) + 1
        codes = np.asarray(module, dtype=np.int64)[rows][studied] * width + skill[rows][studied]
        unique, pair[studied] = np.unique(codes, return_inverse=True)
        pair_module, pair_skill = np.divmod(unique, width)
    return Sequences(
        skill=skill[order[starts]].astype(np.int64),
        learner=learner[order[starts]].astype(np.int64),
        n_active=n_active,
        offset=offset,
        obs=score[rows].astype(np.float64),
        gap_days=np.maximum(days[rows] - prev_days, 0.0),
        row_of=rows.astype(np.int64),
        kind=kinds[rows],
        pair=pair,
        pair_module=pair_module.astype(np.int64),
        pair_skill=pair_skill.astype(np.int64),
        weight=None if weight is None else np.where(studied, np.asarray(weight, dtype=np.float64)[rows], 1.0),
    )
