"""Domain errors, free of any transport; `api/status.py` maps them to gRPC codes.

LubanError
├── InvalidInput        a field value is wrong (carries FieldViolations)     INVALID_ARGUMENT
├── NotFound            unknown learner, module, skill, role, model or job   NOT_FOUND
├── AlreadyExists       same event id, different payload                     ALREADY_EXISTS
├── PreconditionFailed  no usable catalog or model, a job already running,   FAILED_PRECONDITION
│   │                   no path possible under the learner's constraints
│   └── ModelArtifactError  a corrupt or incompatible model folder
├── StoreUnavailable    the store cannot be reached; the same call may be    UNAVAILABLE
│                       retried
└── Conflict            a concurrent change won; retry the whole operation   ABORTED
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class FieldViolation:
    """One bad field: a dotted path into the request (``result.score``) and why."""

    field: str
    description: str


def clipped(text: str, limit: int = 128) -> str:
    """`text` cut to `limit` characters, marked when cut: an error echoes what the caller sent,
    and a megabyte id must not come back in every message (nor overflow the status metadata)."""
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} characters)"


class LubanError(Exception):
    """Base of every error the service reports on purpose."""


class InvalidInput(LubanError):
    def __init__(self, violations: list[FieldViolation] | FieldViolation) -> None:
        self.violations = [violations] if isinstance(violations, FieldViolation) else violations
        super().__init__("; ".join(f"{v.field}: {v.description}" for v in self.violations))

    @classmethod
    def of(cls, field: str, description: str) -> InvalidInput:
        return cls(FieldViolation(field, description))


class NotFound(LubanError):
    def __init__(self, kind: str, identifier: str, field: str = "") -> None:
        self.kind = kind
        self.identifier = identifier
        self.field = field
        super().__init__(f"{kind} {clipped(identifier)!r} not found")


class AlreadyExists(LubanError):
    def __init__(self, message: str, field: str = "") -> None:
        self.field = field
        super().__init__(message)


class PreconditionFailed(LubanError):
    """The request is fine but the state is not: an operator (or the caller) must act first.
    `type` and `subject` say which precondition and on what (google.rpc.PreconditionFailure);
    `type` defaults to the subject's name in capitals."""

    def __init__(self, message: str, subject: str = "", type: str = "") -> None:
        self.subject = subject
        self.type = type or subject.upper().replace(" ", "_") or "STATE"
        super().__init__(message)


class ModelArtifactError(PreconditionFailed):
    pass


class StoreUnavailable(LubanError):
    pass


class Conflict(LubanError):
    pass
