"""The one place that turns domain errors into gRPC statuses (the errors table in docs/api.md)."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Iterator
from functools import wraps
from typing import Any, NoReturn, TypeVar

import grpc
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from recommender.errors import (
    AlreadyExists,
    Conflict,
    InvalidInput,
    LubanError,
    NotFound,
    PreconditionFailed,
    StoreUnavailable,
)

log = logging.getLogger("recommender.api")

_CODES: list[tuple[type[LubanError], grpc.StatusCode]] = [
    (InvalidInput, grpc.StatusCode.INVALID_ARGUMENT),
    (NotFound, grpc.StatusCode.NOT_FOUND),
    (AlreadyExists, grpc.StatusCode.ALREADY_EXISTS),
    (PreconditionFailed, grpc.StatusCode.FAILED_PRECONDITION),
    (StoreUnavailable, grpc.StatusCode.UNAVAILABLE),
    (Conflict, grpc.StatusCode.ABORTED),
]

T = TypeVar("T")


def code_of(error: LubanError) -> grpc.StatusCode:
    for kind, code in _CODES:
        if isinstance(error, kind):
            return code
    return grpc.StatusCode.INTERNAL


def field_of(error: LubanError) -> str:
    """The request field an error is about ("" when none)."""
    if isinstance(error, InvalidInput):
        return error.violations[0].field if error.violations else ""
    return str(getattr(error, "field", ""))


# Error text a status carries (message plus every detail), in bytes: an error echoes what the caller
# sent, and without a bound a megabyte id, or thousands of violations, would come back in the
# trailers, overflow the metadata limit and turn the answer into RESOURCE_EXHAUSTED.
MAX_MESSAGE_BYTES = 400
MAX_DETAIL_BYTES = 500
MAX_FIELD_BYTES = 100
MAX_DESCRIPTION_BYTES = 200


def clip(text: str, limit: int) -> str:
    """`text` cut to at most `limit` UTF-8 bytes (on a character boundary), marked when cut."""
    data = text.encode()
    if len(data) <= limit:
        return text
    return data[: max(limit - 3, 0)].decode(errors="ignore") + "..."


def message_of(error: LubanError) -> str:
    """The error's message as a client sees it (bounded)."""
    return clip(str(error), MAX_MESSAGE_BYTES)


def status_of(error: LubanError) -> status_pb2.Status:
    """google.rpc.Status with BadRequest field violations for invalid fields and PreconditionFailure
    for a state to fix; the text of it all is bounded (MAX_MESSAGE_BYTES + MAX_DETAIL_BYTES)."""
    code = code_of(error)
    status = status_pb2.Status(code=code.value[0], message=message_of(error))
    violations: list[tuple[str, str]] = []
    if isinstance(error, InvalidInput):
        violations = [(v.field, v.description) for v in error.violations]
    elif isinstance(error, NotFound | AlreadyExists) and error.field:
        violations = [(error.field, str(error))]
    if isinstance(error, PreconditionFailed):
        status.details.add().Pack(
            error_details_pb2.PreconditionFailure(
                violations=[
                    error_details_pb2.PreconditionFailure.Violation(
                        type=clip(error.type, MAX_FIELD_BYTES),
                        subject=clip(error.subject, MAX_FIELD_BYTES),
                        description=clip(str(error), MAX_DESCRIPTION_BYTES),
                    )
                ]
            )
        )
    if violations:
        kept: list[tuple[str, str]] = []
        budget = MAX_DETAIL_BYTES
        for field, description in violations:
            f, d = clip(field, MAX_FIELD_BYTES), clip(description, MAX_DESCRIPTION_BYTES)
            size = len(f.encode()) + len(d.encode())
            if size > budget:
                break
            kept.append((f, d))
            budget -= size
        if len(kept) < len(violations):
            more = f" ({len(violations) - len(kept)} more problems not shown)"
            status.message = clip(status.message, MAX_MESSAGE_BYTES - len(more)) + more
        violations = kept
    if violations:
        detail = error_details_pb2.BadRequest(
            field_violations=[
                error_details_pb2.BadRequest.FieldViolation(field=f, description=d) for f, d in violations
            ]
        )
        status.details.add().Pack(detail)
    return status


def abort(context: grpc.ServicerContext, error: LubanError) -> NoReturn:
    context.abort_with_status(rpc_status.to_status(status_of(error)))
    raise AssertionError("abort_with_status returns only by raising")


def _internal(context: grpc.ServicerContext, exc: BaseException, method: str) -> NoReturn:
    incident = uuid.uuid4().hex[:12]
    log.error("unhandled error in %s (incident %s)", method, incident, exc_info=exc)
    status = status_pb2.Status(
        code=code_pb2.INTERNAL, message=f"internal error; incident {incident} is in the server log"
    )
    context.abort_with_status(rpc_status.to_status(status))
    raise AssertionError("abort_with_status returns only by raising")


def translated(method: Callable[..., T]) -> Callable[..., T]:
    """Unary handlers: LubanError -> its status; anything else -> INTERNAL with an incident id."""

    @wraps(method)
    def wrapper(self: Any, request: Any, context: grpc.ServicerContext) -> T:
        try:
            return method(self, request, context)
        except LubanError as error:
            abort(context, error)
        except grpc.RpcError:
            _ended_by_transport(method.__name__)
            raise
        except Exception as exc:
            if _is_abort(exc):
                raise
            _internal(context, exc, method.__name__)

    return wrapper


def translated_stream(method: Callable[..., Iterator[T]]) -> Callable[..., Iterator[T]]:
    """Server-streaming handlers: the same translation for errors raised mid-stream."""

    @wraps(method)
    def wrapper(self: Any, request: Any, context: grpc.ServicerContext) -> Iterator[T]:
        try:
            yield from method(self, request, context)
        except LubanError as error:
            abort(context, error)
        except grpc.RpcError:
            _ended_by_transport(method.__name__)
            raise
        except Exception as exc:
            if _is_abort(exc):
                raise
            _internal(context, exc, method.__name__)

    return wrapper


def _ended_by_transport(method: str) -> None:
    # grpc raises RpcError from a request stream the transport ended (the client cancelled, or
    # sent a message over the size limit, and was answered so): nothing failed here
    log.info("%s: the call ended before its request stream did", method)


def _is_abort(exc: BaseException) -> bool:
    # grpc raises a bare Exception from context.abort(); let it through untouched.
    return type(exc) is Exception and not exc.args
