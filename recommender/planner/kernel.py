"""The planner's step loop (plan.py, _reference_steps) compiled with Numba: one learner at a time,
in plain loops over small arrays, where the reference pays numpy's per-call cost some forty times
a step. The reference stays the specification; this module only runs it faster, and
tests/planner/test_kernel.py plans thousands of random learners both ways.

Same paths, bit for bit: every sum is numpy's pairwise summation (_pairwise), every elementwise
operation is written in the reference's order, and no operation is fused or reassociated (Numba
compiles without fast-math). The one exception is exp and log: numpy's SIMD versions and the C
library's can differ in the last bit, so the kernel uses its own only to rank candidates, reports
the chosen step's expected success and score as inputs (content, value) that plan.py turns into
floats with the reference's numpy expressions, and flags a learner whose choice rests on a near
tie between candidates whose inputs differ (ambiguous): plan.py plans that learner with the
reference instead.

How the kernel maps to the reference step loop, for porting changes to it:
- a row of the reference's arrays (work.mastery[i], work.placed[i], work.implied[i],
  work.allowed[i], work.flagged[i], work.behind_unplaced[i], ...) is the learner's row here;
  `mastery`, `placed`, `allowed` and `behind` are the kernel's own copies, updated in place as
  steps are placed, so the inputs stay as planned for a fallback to the reference;
- per step, in order: readiness (stop ROLE_READY), the step limit (MAX_STEPS), then per view
  module: mastered/satisfied, eligible, content (P(success) before the logit), projected mastery
  and gain, unlock, value, candidates; the time budget (TIME_BUDGET), failed-out modules (halted,
  REPEATED_FAILURE), no candidate (NO_ELIGIBLE_MODULE); the best score; then the placement:
  mastery of the module's skills, placed, minutes, steps taken, behind_unplaced;
- `allowed` is the learner's availability row, read every step; on the Chinese route
  (has_route) a module is also eligible only once the HSK level the path has reached (`hsk`,
  the reference's work.level) opens it (`gate`), a route module's value adds what the route
  opens toward the role (`opened`), and placing a module of the ladder raises `hsk` to the
  level it reaches (`raises`); each step reports the level before it (level_out).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import cast

import numpy as np
import numpy.typing as npt
from numba import njit

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]
IntArray = npt.NDArray[np.int64]

# stop codes (plan.py maps them to StopReason)
STOP_MAX_STEPS = 0
STOP_ROLE_READY = 1
STOP_TIME_BUDGET = 2
STOP_NO_ELIGIBLE = 3
STOP_REPEATED_FAILURE = 4

# two candidates' scores this close (relative) rank the same way whichever exp and log computed
# them only if their inputs are equal; otherwise the reference decides (ambiguous)
TIE_TOLERANCE = 1e-10


def _block_py(a: FloatArray, lo: int, n: int) -> float:
    """numpy's pairwise summation of at most 128 terms: sequential below 8, else 8 interleaved
    partial sums combined as a tree, then the remainder."""
    if n < 8:
        res = -0.0
        for i in range(n):
            res += a[lo + i]
        return float(res)
    r0, r1, r2, r3 = a[lo], a[lo + 1], a[lo + 2], a[lo + 3]
    r4, r5, r6, r7 = a[lo + 4], a[lo + 5], a[lo + 6], a[lo + 7]
    i = 8
    while i < n - (n % 8):
        r0 += a[lo + i]
        r1 += a[lo + i + 1]
        r2 += a[lo + i + 2]
        r3 += a[lo + i + 3]
        r4 += a[lo + i + 4]
        r5 += a[lo + i + 5]
        r6 += a[lo + i + 6]
        r7 += a[lo + i + 7]
        i += 8
    res = ((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7))
    while i < n:
        res += a[lo + i]
        i += 1
    return float(res)


_block = njit(cache=True)(_block_py)


def _pairwise_py(a: FloatArray, lo: int, n: int) -> float:
    """numpy's pairwise summation of a[lo:lo + n] (contiguous), operation for operation: what
    ndarray.sum over the last axis of a C-ordered array computes for each row. Above 128 terms
    numpy halves the range (at a multiple of 8) and adds the halves' sums; done here with an
    explicit stack, not recursion."""
    if n <= 128:
        return float(_block(a, lo, n))
    los = np.empty(64, dtype=np.int64)
    ns = np.empty(64, dtype=np.int64)
    stage = np.zeros(64, dtype=np.int64)
    sums = np.empty(64)
    los[0], ns[0], stage[0] = lo, n, 0
    top, n_sums = 1, 0
    while top:
        k = top - 1
        start, count = los[k], ns[k]
        half = count // 2
        half -= half % 8
        if count <= 128:
            sums[n_sums] = _block(a, start, count)
            n_sums += 1
            top -= 1
        elif stage[k] == 0:
            stage[k] = 1
            los[top], ns[top], stage[top] = start, half, 0
            top += 1
        elif stage[k] == 1:
            stage[k] = 2
            los[top], ns[top], stage[top] = start + half, count - half, 0
            top += 1
        else:
            sums[n_sums - 2] = sums[n_sums - 2] + sums[n_sums - 1]
            n_sums -= 1
            top -= 1
    return float(sums[0])


_pairwise = njit(cache=True)(_pairwise_py)


def _sum_py(a: FloatArray, n: int) -> float:
    """ndarray.sum of a[:n]: the reduction starts from the identity, 0.0."""
    return float(0.0 + _pairwise(a, 0, n))


_sum = njit(cache=True)(_sum_py)


def _maximum_py(a: float, b: float) -> float:
    """np.maximum of two floats (NaN propagates from either side)."""
    return a if (a >= b or math.isnan(a)) else b


def _minimum_py(a: float, b: float) -> float:
    """np.minimum of two floats."""
    return a if (a <= b or math.isnan(a)) else b


_maximum = njit(cache=True)(_maximum_py)
_minimum = njit(cache=True)(_minimum_py)


def _readiness_py(
    m: FloatArray, req_idx: npt.NDArray[np.intp], level: FloatArray, weight: FloatArray, buf: FloatArray
) -> float:
    """_RoleArrays.readiness of one mastery row."""
    n_req = req_idx.shape[0]
    for r in range(n_req):
        buf[r] = _minimum(m[req_idx[r]] / level[r], 1.0) * weight[r]
    return float(_sum(buf, n_req))


_readiness = njit(cache=True)(_readiness_py)


def _plan_steps_py(
    # the role's view, shared by the batch (_RoleArrays and its ModuleView)
    skill_pad: npt.NDArray[np.intp],
    n_taught: npt.NDArray[np.intp],
    pad_share: FloatArray,
    pad_weights: FloatArray,
    pad_req: npt.NDArray[np.intp],
    pad_level: FloatArray,
    pad_weight: FloatArray,
    learn: FloatArray,
    keep: FloatArray,
    module_right: FloatArray,
    module_guess: FloatArray,
    content_shift: FloatArray,
    hours_penalty: FloatArray,
    prereq_pad: npt.NDArray[np.intp],
    minutes: FloatArray,
    behind_view: FloatArray,
    req_idx: npt.NDArray[np.intp],
    level: FloatArray,
    weight: FloatArray,
    gated: BoolArray,
    consts: FloatArray,
    raises: IntArray,
    # per learner (rows of the reference's _Work)
    mastery0: FloatArray,
    allowed0: BoolArray,
    implied: BoolArray,
    flagged: BoolArray,
    model_logit: FloatArray,
    has_model: bool,
    knowledge_weight: float,
    behind0: FloatArray,
    minutes_used0: FloatArray,
    taken0: IntArray,
    max_steps: IntArray,
    budget: FloatArray,
    # the Chinese route (the reference's work.gate, work.level, work.route, work.opened), when
    # some learner of the batch takes one (has_route)
    gate: IntArray,
    level0: IntArray,
    route: BoolArray,
    opened: FloatArray,
    has_route: bool,
    # outputs, per learner and study step
    chosen: IntArray,
    content_out: FloatArray,
    value_out: FloatArray,
    unlock_out: FloatArray,
    projected_out: FloatArray,
    satisfied_out: BoolArray,
    level_out: IntArray,
    n_steps: IntArray,
    stop: IntArray,
    readiness_after: FloatArray,
    ambiguous: BoolArray,
) -> None:
    threshold, eps, unlock_weight = consts[0], consts[1], consts[2]
    target, width, floor, tie = consts[3], consts[4], consts[5], consts[6]
    size = mastery0.shape[0]
    n_view, n_slots = skill_pad.shape
    n_prereq = prereq_pad.shape[1]
    n_req = req_idx.shape[0]
    mastery = np.empty(mastery0.shape[1])
    placed = np.zeros(n_view, dtype=np.bool_)
    allowed = np.zeros(n_view, dtype=np.bool_)
    behind = np.empty((n_view, n_req + 1))
    m_pad = np.empty((n_view, n_slots))
    projected = np.empty((n_view, n_slots))
    buf = np.empty(max(n_slots, n_req + 1))
    need = np.empty(n_req + 1)
    known = np.empty(n_view)
    satisfied = np.ones(n_view + 1, dtype=np.bool_)  # the last slot pads prerequisite lists
    eligible = np.empty(n_view, dtype=np.bool_)
    candidate = np.empty(n_view, dtype=np.bool_)
    content = np.empty(n_view)
    unlock = np.empty(n_view)
    value = np.empty(n_view)
    score = np.empty(n_view)
    for b in range(size):
        mastery[:] = mastery0[b]
        placed[:] = False
        allowed[:] = allowed0[b]
        behind[:, :] = behind0[b]
        used = minutes_used0[b]
        taken = taken0[b]
        limited = budget[b] > 0
        hsk = level0[b]
        steps = 0
        code = STOP_MAX_STEPS
        while True:
            if _readiness(mastery, req_idx, level, weight, buf) >= 1.0 - eps:
                code = STOP_ROLE_READY
                break
            if taken >= max_steps[b]:
                break
            for j in range(n_view):
                for w in range(n_slots):
                    m_pad[j, w] = mastery[skill_pad[j, w]]
                    buf[w] = pad_share[j, w] * m_pad[j, w]
                known[j] = _sum(buf, n_slots)
                satisfied[j] = (known[j] >= threshold - eps and not gated[j]) or placed[j] or implied[b, j]
            for r in range(n_req):
                need[r] = _maximum(level[r] - mastery[req_idx[r]], 0.0) / level[r] * weight[r]
            need[n_req] = 0.0
            route_value = 0.0
            if has_route:
                # a module of the Chinese route is worth what the route opens toward the role
                for r in range(n_req):
                    buf[r] = need[r] * opened[b, r]
                route_value = unlock_weight * _sum(buf, n_req)
            any_candidate = False
            for j in range(n_view):
                ok = allowed[j] and not placed[j]
                if ok:
                    for p in range(n_prereq):
                        if not satisfied[prereq_pad[j, p]]:
                            ok = False
                            break
                if has_route and gate[b, j] > hsk:
                    ok = False  # taught only in Chinese above the level the path has reached
                eligible[j] = ok
                k = known[j]
                content[j] = _minimum(_maximum(k * module_right[j] + (1.0 - k) * module_guess[j], 1e-4), 1 - 1e-4)
                for w in range(n_slots):
                    m = m_pad[j, w]
                    updated = m * keep[j, w] + learn[j, w]  # _LearningPads.expected_update
                    projected[j, w] = _maximum(m + pad_weights[j, w] * (updated - m), m)
                    buf[w] = pad_weight[j, w] * (
                        _minimum(projected[j, w] / pad_level[j, w], 1.0) - _minimum(m / pad_level[j, w], 1.0)
                    )
                gain = _sum(buf, n_slots)
                u = 0.0
                if ok and not satisfied[j]:
                    for r in range(n_req + 1):
                        buf[r] = behind[j, r] * need[r]
                    u = _sum(buf, n_req + 1)
                unlock[j] = u
                value[j] = gain + unlock_weight * _maximum(u, 0.0) * (0.0 if satisfied[j] else 1.0)
                if has_route:
                    value[j] = value[j] + route_value * (1.0 if route[b, j] else 0.0)
                candidate[j] = ok and value[j] > eps
                any_candidate = any_candidate or candidate[j]
            over_budget = False
            if limited:
                fitting = False
                for j in range(n_view):
                    if candidate[j] and not (used + minutes[j] <= budget[b]):
                        candidate[j] = False
                    fitting = fitting or candidate[j]
                over_budget = any_candidate and not fitting
                any_candidate = fitting
            # route around modules failed out; when only they are left, retake one with support
            preferred = False
            for j in range(n_view):
                preferred = preferred or (candidate[j] and not flagged[b, j])
            halted = any_candidate and not preferred
            if not halted:
                for j in range(n_view):
                    candidate[j] = candidate[j] and not flagged[b, j]
                any_candidate = preferred
            if not any_candidate:
                code = STOP_TIME_BUDGET if over_budget else STOP_NO_ELIGIBLE
                break
            best = -1
            for j in range(n_view):
                if not candidate[j]:
                    continue
                logit = math.log(content[j] / (1.0 - content[j])) + content_shift[j]
                if has_model:
                    logit = knowledge_weight * logit + model_logit[b, j]
                success = 1.0 / (1.0 + math.exp(-logit))
                z = (success - target) / width
                score[j] = value[j] * (floor + (1.0 - floor) * math.exp(-(z * z))) * hours_penalty[j]
                if best < 0 or score[j] > score[best] or math.isnan(score[j]):
                    best = j
                    if math.isnan(score[j]):
                        break  # argmax stops at the first NaN
            for j in range(n_view):
                if (
                    candidate[j]
                    and j != best
                    and abs(score[j] - score[best]) <= tie * abs(score[best])
                    and not (
                        content[j] == content[best]
                        and content_shift[j] == content_shift[best]
                        and (not has_model or model_logit[b, j] == model_logit[b, best])
                        and value[j] == value[best]
                        and hours_penalty[j] == hours_penalty[best]
                    )
                ):
                    ambiguous[b] = True
            if ambiguous[b]:
                break
            j = best
            chosen[b, steps] = j
            content_out[b, steps] = content[j]
            value_out[b, steps] = value[j]
            unlock_out[b, steps] = unlock[j]
            projected_out[b, steps, :] = projected[j, :]
            satisfied_out[b, steps, :] = satisfied[:n_view]
            level_out[b, steps] = hsk
            steps += 1
            for w in range(n_taught[j]):
                mastery[skill_pad[j, w]] = projected[j, w]
            placed[j] = True
            used += minutes[j]
            taken += 1
            # what the placed module teaches no longer counts as unlocked by the modules behind it
            # (each distinct requirement column once, as the reference's fancy-indexed update)
            for w in range(n_slots):
                r = pad_req[j, w]
                seen = False
                for v in range(w):
                    if pad_req[j, v] == r:
                        seen = True
                        break
                if not seen:
                    for x in range(n_view):
                        behind[x, r] -= behind_view[x, j]
            # a module of the Chinese ladder placed: later steps count the level it reaches
            if has_route and raises[j] > hsk:
                hsk = raises[j]
            if halted:
                code = STOP_REPEATED_FAILURE
                break
        n_steps[b] = steps
        stop[b] = code
        readiness_after[b] = _readiness(mastery, req_idx, level, weight, buf)


_plan_steps = cast(Callable[..., None], njit(cache=True)(_plan_steps_py))


@dataclass(frozen=True)
class RoleInputs:
    """A role's planning arrays (plan.py's _RoleArrays and its ModuleView), as the kernel takes them."""

    skill_pad: npt.NDArray[np.intp]  # (view modules, skill slots)
    n_taught: npt.NDArray[np.intp]  # skills per module: its leading slots
    pad_share: FloatArray
    pad_weights: FloatArray
    pad_req: npt.NDArray[np.intp]
    pad_level: FloatArray
    pad_weight: FloatArray
    learn: FloatArray
    keep: FloatArray
    module_right: FloatArray
    module_guess: FloatArray
    content_shift: FloatArray
    hours_penalty: FloatArray
    prereq_pad: npt.NDArray[np.intp]
    minutes: FloatArray
    behind: FloatArray
    req_idx: npt.NDArray[np.intp]
    level: FloatArray
    weight: FloatArray
    gated: BoolArray  # modules mastered only by evidence at their own level (plan.py's _RoleArrays.gated)
    # (mastery confidence, EPS, UNLOCK_WEIGHT, TARGET_SUCCESS, ZPD_WIDTH, ZPD_FLOOR, TIE_TOLERANCE):
    # arguments, not globals, so a cached compilation never keeps a stale constant
    consts: FloatArray
    raises: IntArray  # (view modules,) the HSK level each raises a learner to, else 0


@dataclass(frozen=True)
class Steps:
    """The kernel's study steps per learner (rows in batch order, columns in path order)."""

    chosen: IntArray  # view module of each step
    content: FloatArray  # its P(success) from mastery, clipped, before the logit
    value: FloatArray  # its projected readiness gain plus the weighted unlock
    unlock: FloatArray
    projected: FloatArray  # (learners, steps, skill slots) mastery of its skills after it
    satisfied: BoolArray  # (learners, steps, view modules) satisfied before it
    level: IntArray  # the HSK level the path has reached before it
    n_steps: IntArray
    stop: IntArray  # STOP_* codes
    readiness_after: FloatArray
    ambiguous: BoolArray  # to be planned by the reference: no step of theirs is valid


def plan_steps(
    role: RoleInputs,
    mastery: FloatArray,
    allowed: BoolArray,
    implied: BoolArray,
    flagged: BoolArray,
    model_logit: FloatArray | None,
    knowledge_weight: float,
    behind_unplaced: FloatArray,
    minutes_used: FloatArray,
    taken: IntArray,
    max_steps: IntArray,
    budget: FloatArray,
    route: tuple[IntArray, IntArray, BoolArray, FloatArray] | None = None,
) -> Steps:
    """Run the compiled step loop over a batch: the arguments are the reference's _Work arrays
    (learners, ...), read only; `model_logit` is the model's part of the success logit and
    `knowledge_weight` knowledge tracing's weight beside it; `route` is (gate, level, route,
    opened) when some learner of the batch takes the Chinese route."""
    size, n_view = allowed.shape
    width = max(1, int(max_steps.max(initial=1)) - int(taken.min(initial=0)))
    out = Steps(
        chosen=np.zeros((size, width), dtype=np.int64),
        content=np.zeros((size, width)),
        value=np.zeros((size, width)),
        unlock=np.zeros((size, width)),
        projected=np.zeros((size, width, role.skill_pad.shape[1])),
        satisfied=np.zeros((size, width, n_view), dtype=np.bool_),
        level=np.zeros((size, width), dtype=np.int64),
        n_steps=np.zeros(size, dtype=np.int64),
        stop=np.zeros(size, dtype=np.int64),
        readiness_after=np.zeros(size),
        ambiguous=np.zeros(size, dtype=np.bool_),
    )
    r = role
    if route is None:
        gate, level, on_route = np.zeros((size, n_view), dtype=np.int64), np.zeros(size, dtype=np.int64), allowed
        opened = np.zeros((size, r.req_idx.shape[0]))
    else:
        gate, level, on_route, opened = route
    _plan_steps(
        r.skill_pad, r.n_taught, r.pad_share, r.pad_weights, r.pad_req, r.pad_level, r.pad_weight, r.learn, r.keep,
        r.module_right, r.module_guess, r.content_shift, r.hours_penalty, r.prereq_pad, r.minutes, r.behind,
        r.req_idx, r.level, r.weight, r.gated, r.consts, r.raises,
        mastery, allowed, implied, flagged, model_logit if model_logit is not None else np.zeros((size, n_view)),
        model_logit is not None, float(knowledge_weight), behind_unplaced, minutes_used, taken, max_steps, budget,
        gate, level, on_route, opened, route is not None,
        out.chosen, out.content, out.value, out.unlock, out.projected, out.satisfied, out.level,
        out.n_steps, out.stop, out.readiness_after, out.ambiguous,
    )  # fmt: skip
    return out


def warm() -> None:
    """Load the compiled step loop (from its disk cache, or compile it) by running it on no
    learners, with the argument types of a real batch: a server does this before its first call."""
    f1, f2 = np.zeros(0), np.zeros((0, 0))
    i1, i2 = np.zeros(0, dtype=np.intp), np.zeros((0, 0), dtype=np.intp)
    b2, n1 = np.zeros((0, 0), dtype=np.bool_), np.zeros(0, dtype=np.int64)
    role = RoleInputs(
        skill_pad=i2, n_taught=i1, pad_share=f2, pad_weights=f2, pad_req=i2, pad_level=f2, pad_weight=f2,
        learn=f2, keep=f2, module_right=f1, module_guess=f1, content_shift=f1, hours_penalty=f1,
        prereq_pad=i2, minutes=f1, behind=f2, req_idx=i1, level=f1, weight=f1, gated=np.zeros(0, dtype=np.bool_),
        consts=np.zeros(7), raises=n1,
    )  # fmt: skip
    plan_steps(role, f2, b2, b2, b2, None, 1.0, np.zeros((0, 0, 0)), f1, n1, n1, f1)
