"""Cohort output encoders: JSONL (one LearningPath per line in protobuf's JSON mapping, field names
as in the .proto), CSV and Parquet (one row per step; a learner with no step gets one row with
position 0). Parts are encoded by workers and assembled here in input order.

Protobuf and gRPC are not imported here (the mapping module is, lazily, only for the reference
encoding): `recommender paths` starts without them."""

from __future__ import annotations

import csv
import io
import json
import math
import os
from collections import OrderedDict
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, BinaryIO

from recommender.domain.assessment import to_micros
from recommender.domain.path import LearningPath, PathStep, Reason, ReasonCode, SkillGain, StepKind, StopReason

STEP_COLUMNS = [
    "learner_id", "target_role_id", "position", "module_id", "score", "expected_success", "estimated_minutes",
    "review", "reasons", "reason_texts", "readiness_now", "readiness_after", "stop_reason",
    "unreachable_skill_ids", "model_version", "generated_at", "kind", "check_skill_ids", "blockers", "locale",
]  # fmt: skip


# protobuf's names of the domain's enums (the .proto prefixes each value with its enum's name;
# a test holds these to api.mapping's tables, which come from the generated code)
STOP_REASON_NAMES = {r: f"STOP_REASON_{r.name}" for r in StopReason}
STEP_KIND_NAMES = {k: f"STEP_KIND_{k.name}" for k in StepKind}
REASON_CODE_NAMES = {c: f"REASON_CODE_{c.name}" for c in ReasonCode}


def timestamp_json(moment: datetime) -> str:
    """RFC 3339 as protobuf's JSON mapping writes a Timestamp (api.mapping.timestamp_json, which a
    test holds it to): UTC, 'Z', and a fraction of 0, 3, 6 or 9 digits."""
    if moment.tzinfo is None:
        from recommender.api import mapping  # a naive moment is read as UTC there; rare

        return mapping.timestamp_json(moment)
    seconds, micros = divmod(to_micros(moment), 1_000_000)
    text = (_EPOCH_NAIVE + timedelta(seconds=seconds)).isoformat()
    if micros == 0:
        return text + "Z"
    if micros % 1000 == 0:
        return f"{text}.{micros // 1000:03d}Z"
    return f"{text}.{micros:06d}Z"


_EPOCH_NAIVE = datetime(1970, 1, 1)


def path_json(path: LearningPath) -> dict[str, Any]:
    """The path in protobuf's JSON mapping (field names as in the .proto, every field printed),
    built directly: the same dict json_format.MessageToDict gives for mapping.path_to_proto(path)
    (a test holds the two together), at a fraction of its cost."""
    return {**_path_fields(path), "steps": [_step_json(s) for s in path.steps]}


def _path_fields(path: LearningPath, stamp: bool = True) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "learner_id": path.learner_id,
        "target_role_id": path.target_role_id,
        "readiness_now": path.readiness_now,
        "readiness_after": path.readiness_after,
        "stop_reason": STOP_REASON_NAMES[path.stop_reason],
        "unreachable_skill_ids": list(path.unreachable_skill_ids),
        "model_version": path.model_version,
        "blockers": [_reason_json(r) for r in path.blockers],
        "locale": path.locale,
    }
    if stamp and path.generated_at is not None:
        fields["generated_at"] = timestamp_json(path.generated_at)
    return fields


def _step_json(step: PathStep) -> dict[str, Any]:
    return {
        "position": step.position,
        "module_id": step.module_id,
        "score": step.score,
        "expected_success": step.expected_success,
        "gains": [
            {"skill_id": g.skill_id, "mastery_before": g.mastery_before, "mastery_after": g.mastery_after}
            for g in step.gains
        ],
        "estimated_minutes": step.estimated_minutes,
        "review": step.review,
        "reasons": [_reason_json(r) for r in step.reasons],
        "kind": STEP_KIND_NAMES[step.kind],
        "check_skill_ids": list(step.check_skill_ids),
    }


def _reason_json(reason: Reason) -> dict[str, Any]:
    return {"code": REASON_CODE_NAMES[reason.code], "params": dict(reason.params), "text": reason.text}


def path_json_via_proto(path: LearningPath) -> dict[str, Any]:
    """The reference path_json must match: protobuf's own JSON mapping."""
    from google.protobuf import json_format

    from recommender.api import mapping

    return json_format.MessageToDict(
        mapping.path_to_proto(path), preserving_proto_field_name=True, always_print_fields_with_no_presence=True
    )


def step_rows(path: LearningPath) -> list[dict[str, Any]]:
    common = {
        "learner_id": path.learner_id,
        "target_role_id": path.target_role_id,
        "readiness_now": round(path.readiness_now, 6),
        "readiness_after": round(path.readiness_after, 6),
        "stop_reason": path.stop_reason.value,
        "unreachable_skill_ids": ";".join(path.unreachable_skill_ids),
        "model_version": path.model_version,
        "generated_at": path.generated_at.isoformat() if path.generated_at else "",
        "blockers": " | ".join(r.text for r in path.blockers),
        "locale": path.locale,
    }
    if not path.steps:
        return [{**common, "position": 0, "module_id": "", "score": None, "expected_success": None,
                 "estimated_minutes": 0, "review": False, "reasons": "", "reason_texts": "", "kind": "",
                 "check_skill_ids": ""}]  # fmt: skip
    return [
        {
            **common,
            "position": s.position,
            "module_id": s.module_id,
            "score": round(s.score, 6),
            "expected_success": round(s.expected_success, 6),
            "estimated_minutes": s.estimated_minutes,
            "review": s.review,
            "reasons": ";".join(r.code.value for r in s.reasons),
            "reason_texts": " | ".join(r.text for r in s.reasons),
            "kind": s.kind.value,
            "check_skill_ids": ";".join(s.check_skill_ids),
        }
        for s in path.steps
    ]


# Learners planned from the same inputs share one path but for these fields (the planner's memo);
# blockers sort before them and are written first
PER_LEARNER_FIELDS = ("learner_id", "generated_at")
LEADING_FIELDS = ("blockers",)
# the rest, in the order sorted keys give (JsonlEncoder._shared_fields writes them so)
SHARED_FIELDS = ("locale", "model_version", "readiness_after", "readiness_now", "steps", "stop_reason",
                 "target_role_id", "unreachable_skill_ids")  # fmt: skip


class JsonlEncoder:
    """One JSON object per line, keys sorted (the output must not depend on dict order): exactly
    json.dumps(path_json(p), ensure_ascii=False, sort_keys=True) per path, encoded in UTF-8.

    Written as bytes from pieces kept as bytes: a line is about 10 KB, mostly reason texts in
    scripts outside Latin-1, and building it as str would copy and widen those texts at every
    join before encoding the whole line once more.

    Learners planned from the same inputs share one steps tuple (the planner's memo), so the
    encoded fields other than PER_LEARNER_FIELDS are kept for the most recent STEPS_KEPT tuples,
    keyed by identity and checked against the path's own values; each entry holds its tuple, so an
    id cannot be reused while cached. Not pickled: workers start empty."""

    STEPS_KEPT = 20_000

    def __init__(self) -> None:
        self._shared: OrderedDict[int, tuple[tuple[PathStep, ...], tuple[Any, ...], bytes]] = OrderedDict()
        self._last_time: tuple[Any, bytes] | None = None
        self._reasons: dict[int, tuple[Reason, bytes]] = {}
        # a step's gains and reasons recur across learners (the same module after the same ones,
        # the planner's shared Reason objects): encoded once per value, reasons keyed by identity
        # (each entry holds its reasons, so no id can be reused while it is kept)
        self._gains: dict[tuple[SkillGain, ...], bytes] = {}
        self._reason_lists: dict[tuple[int, ...], tuple[tuple[Reason, ...], bytes]] = {}

    def __getstate__(self) -> dict[str, Any]:
        return {}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__()  # type: ignore[misc]

    def __call__(self, paths: Sequence[LearningPath], first_part: bool) -> bytes:
        return b"".join(self.lines(paths, first_part))

    def lines(self, paths: Sequence[LearningPath], first_part: bool) -> list[bytes]:
        """The part as its lines, for a writer that need not join them."""
        return list(map(self.line, paths))

    def line(self, path: LearningPath) -> bytes:
        """One path's line. With sorted keys the line is the blockers, the per-learner fields
        (generated_at, learner_id), then the rest (_shared_fields), encoded once per steps tuple."""
        key = id(path.steps)
        values = (path.target_role_id, path.readiness_now, path.readiness_after, path.stop_reason,
                  path.unreachable_skill_ids, path.model_version, path.blockers, path.locale)  # fmt: skip
        cached = self._shared.get(key)
        if cached is not None and cached[0] is path.steps and cached[1] == values:
            self._shared.move_to_end(key)
            rest = cached[2]
        else:
            rest = self._shared_fields(path)
            self._shared[key] = (path.steps, values, rest)
            if len(self._shared) > self.STEPS_KEPT:
                self._shared.popitem(last=False)
        blockers = b", ".join([self._reason(r) for r in path.blockers])
        learner = _string(path.learner_id).encode()
        if path.generated_at is None:
            return b'{"blockers": [%b], "learner_id": %b, %b}\n' % (blockers, learner, rest)
        if self._last_time is None or self._last_time[0] != path.generated_at:
            stamp = _string(timestamp_json(path.generated_at)).encode()
            self._last_time = (path.generated_at, b'"generated_at": ' + stamp + b", ")
        return b'{"blockers": [%b], %b"learner_id": %b, %b}\n' % (blockers, self._last_time[1], learner, rest)

    def _shared_fields(self, path: LearningPath) -> bytes:
        """The fields after learner_id, in sorted key order, as _dumps writes each value."""
        return (
            b'"locale": %b, "model_version": %b, "readiness_after": %b, "readiness_now": %b, "steps": [%b], '
            b'"stop_reason": "%b", "target_role_id": %b, "unreachable_skill_ids": [%b]'
            % (
                _string(path.locale).encode(),
                _string(path.model_version).encode(),
                _json_float(path.readiness_after).encode(),
                _json_float(path.readiness_now).encode(),
                b", ".join([self._step(s) for s in path.steps]),
                STOP_REASON_NAMES[path.stop_reason].encode(),
                _string(path.target_role_id).encode(),
                ", ".join(map(_string, path.unreachable_skill_ids)).encode(),
            )
        )

    def _step(self, step: PathStep) -> bytes:
        """_dumps(_step_json(step)), written out: the keys in sorted order, floats as json writes
        them (float.__repr__), and each reason encoded once (the planner shares Reason objects)."""
        gains = self._gains.get(step.gains)
        if gains is None:
            gains = ", ".join(
                f'{{"mastery_after": {_float(g.mastery_after)}, "mastery_before": {_float(g.mastery_before)}, '
                f'"skill_id": {_string(g.skill_id)}}}'
                for g in step.gains
            ).encode()
            if len(self._gains) >= self.STEPS_KEPT:
                self._gains.clear()
            self._gains[step.gains] = gains
        key = tuple(map(id, step.reasons))
        found = self._reason_lists.get(key)
        if found is None:
            if len(self._reason_lists) >= self.STEPS_KEPT:
                self._reason_lists.clear()
            found = self._reason_lists[key] = (step.reasons, b", ".join(map(self._reason, step.reasons)))
        checks = ", ".join(map(_string, step.check_skill_ids)).encode() if step.check_skill_ids else b""
        return (
            b'{"check_skill_ids": [%b], "estimated_minutes": %d, "expected_success": %b, "gains": [%b], '
            b'"kind": "%b", "module_id": %b, "position": %d, "reasons": [%b], "review": %b, "score": %b}'
            % (
                checks,
                int(step.estimated_minutes),
                _float(step.expected_success).encode(),
                gains,
                _STEP_KINDS[step.kind._name_],
                _string(step.module_id).encode(),
                int(step.position),
                found[1],
                b"true" if step.review else b"false",
                _float(step.score).encode(),
            )
        )

    def _reason(self, reason: Reason) -> bytes:
        found = self._reasons.get(id(reason))
        if found is not None and found[0] is reason:
            return found[1]
        text = _dumps(_reason_json(reason)).encode()
        if len(self._reasons) >= self.STEPS_KEPT:
            self._reasons.clear()
        self._reasons[id(reason)] = (reason, text)  # holding the reason: its id cannot be reused while kept
        return text


# by member name: an Enum's hash runs Python code, its name's does not
_STEP_KINDS = {kind._name_: name.encode() for kind, name in STEP_KIND_NAMES.items()}

_float = float.__repr__  # a finite float as json writes it (also for numpy's float64, a float subclass)


def _json_float(value: float) -> str:
    """A float as json writes it, the non-finite ones included."""
    return _float(value) if math.isfinite(value) else _dumps(float(value))


_string = json.encoder.encode_basestring  # what json uses for str when ensure_ascii is False


def encode_jsonl(paths: Sequence[LearningPath], first_part: bool) -> bytes:
    return JsonlEncoder()(paths, first_part)


_JSON = json.JSONEncoder(ensure_ascii=False, sort_keys=True)


def _dumps(value: Any) -> str:
    """json.dumps(value, ensure_ascii=False, sort_keys=True), without building an encoder per call."""
    return _JSON.encode(value)


def encode_csv(paths: Sequence[LearningPath], first_part: bool) -> bytes:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=STEP_COLUMNS, lineterminator="\n")
    if first_part:
        writer.writeheader()
    for p in paths:
        writer.writerows(step_rows(p))
    return buffer.getvalue().encode()


def encode_parquet(paths: Sequence[LearningPath], first_part: bool) -> bytes:
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = [r for p in paths for r in step_rows(p)]
    table = pa.Table.from_pylist(rows, schema=_parquet_schema())
    sink = io.BytesIO()
    pq.write_table(table, sink)
    return sink.getvalue()


def _parquet_schema() -> Any:
    import pyarrow as pa

    return pa.schema(
        [
            ("learner_id", pa.string()), ("target_role_id", pa.string()), ("position", pa.int32()),
            ("module_id", pa.string()), ("score", pa.float64()), ("expected_success", pa.float64()),
            ("estimated_minutes", pa.int32()), ("review", pa.bool_()), ("reasons", pa.string()),
            ("reason_texts", pa.string()), ("readiness_now", pa.float64()), ("readiness_after", pa.float64()),
            ("stop_reason", pa.string()), ("unreachable_skill_ids", pa.string()), ("model_version", pa.string()),
            ("generated_at", pa.string()), ("kind", pa.string()), ("check_skill_ids", pa.string()),
            ("blockers", pa.string()), ("locale", pa.string()),
        ]
    )  # fmt: skip


def concatenate(out: Path, parts: list[Path]) -> None:
    assembly = Concatenation(out)
    try:
        for part in parts:
            assembly.add(part)
    except BaseException:
        assembly.abort()
        raise
    assembly.close()


class Concatenation:
    """The output as its parts concatenated in order, appended one by one as each is ready (a
    cohort's parts while later ones are still planned, so the end of a run copies only the last
    one), into `<out>.tmp`, which replaces `out` when closed."""

    def __init__(self, out: Path) -> None:
        self._out = out
        self._tmp = out.with_name(out.name + ".tmp")
        self._handle: BinaryIO = self._tmp.open("wb")

    def add(self, part: Path) -> None:
        with part.open("rb") as source:
            _append(source, self._handle)

    def close(self) -> None:
        self._handle.close()
        os.replace(self._tmp, self._out)

    def abort(self) -> None:
        self._handle.close()
        self._tmp.unlink(missing_ok=True)


class Afterwards:
    """An assembly that needs every part at once (`assemble(out, parts)` when closed)."""

    def __init__(self, out: Path, assemble: Callable[[Path, list[Path]], None]) -> None:
        self._out, self._assemble, self._parts = out, assemble, list[Path]()

    def add(self, part: Path) -> None:
        self._parts.append(part)

    def close(self) -> None:
        self._assemble(self._out, self._parts)

    def abort(self) -> None:
        self._parts.clear()


def _append(source: BinaryIO, target: BinaryIO) -> None:
    """Copy in the kernel where it can (copy_file_range: no user-space copy, a reflink on file
    systems that share extents; a 100k cohort's JSONL is 1 GB), else through a buffer."""
    size = os.fstat(source.fileno()).st_size
    copy_range = getattr(os, "copy_file_range", None)
    done = 0
    if copy_range is not None:
        target.flush()
        try:
            while done < size:
                copied = copy_range(source.fileno(), target.fileno(), size - done)
                if copied == 0:
                    break
                done += copied
            if done == size:
                target.seek(0, os.SEEK_END)
                return
        except OSError:
            pass  # not supported between these files: copy what is left through a buffer
        source.seek(done)
        target.seek(0, os.SEEK_END)
    while block := source.read(1 << 20):
        target.write(block)


def merge_parquet(out: Path, parts: list[Path]) -> None:
    import pyarrow.parquet as pq

    tmp = out.with_name(out.name + ".tmp")
    with pq.ParquetWriter(tmp, _parquet_schema()) as writer:
        for part in parts:
            writer.write_table(pq.read_table(part))
    os.replace(tmp, out)


def encoder_for(out: Path) -> tuple[Callable[[Sequence[LearningPath], bool], bytes], Callable[[Path], Assembly]]:
    """The encoder of `out`'s format, and how its parts become `out` (an Assembly per run)."""
    name = out.name.lower()
    if name.endswith(".jsonl") or name.endswith(".json"):
        return JsonlEncoder(), Concatenation
    if name.endswith(".csv"):
        return encode_csv, Concatenation
    if name.endswith(".parquet"):
        return encode_parquet, lambda target: Afterwards(target, merge_parquet)
    raise ValueError(f"{out}: unknown output format; use .jsonl, .csv or .parquet")


Assembly = Concatenation | Afterwards
