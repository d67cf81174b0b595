"""UserErrors for payloads, and top-level error codes with masking of the unexpected."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import strawberry
import structlog
from graphql import GraphQLError
from strawberry.extensions import MaskErrors
from strawberry.types import ExecutionContext

from app.kit.errors import DomainError, Forbidden, NotFound, Unauthenticated
from app.kit.errors import ErrorCode as DomainErrorCode

log = structlog.get_logger(__name__)

strawberry.enum(DomainErrorCode, name="ErrorCode")
ErrorCode = DomainErrorCode


@strawberry.type
class UserError:
    code: ErrorCode
    message: str
    field: str | None = None

    @classmethod
    def of(cls, error: DomainError) -> UserError:
        return cls(code=error.code, message=error.message, field=error.field)


_TOP_LEVEL: dict[type[Exception], tuple[str, str]] = {
    Unauthenticated: ("UNAUTHENTICATED", "Authentication required: send a valid bearer token."),
    Forbidden: ("FORBIDDEN", "You may not do this."),
    NotFound: ("NOT_FOUND", "Not found."),
}


class ApiErrors(MaskErrors):
    """Known failures get `extensions.code`; anything unexpected is masked as INTERNAL."""

    def __init__(self) -> None:
        super().__init__(should_mask_error=lambda _error: True)

    def on_stream_result(self, result: Any) -> Iterator[None]:
        # Every subscription message passes here: skip MaskErrors' Protocol isinstance checks
        # (tens of microseconds each) when there is nothing to mask.
        self._stream_result_processed = True
        if any(getattr(result, name, None) for name in ("errors", "incremental", "completed")):
            self._process_stream_result(result)
        yield None

    def anonymise_error(self, error: GraphQLError) -> GraphQLError:
        original = error.original_error
        if original is None or isinstance(original, GraphQLError):
            # The request's own fault (syntax, validation, variables that do not coerce).
            if error.extensions and "code" in error.extensions:
                return error
            return _with(error, error.message, {**(error.extensions or {}), "code": "BAD_REQUEST"})
        for kind, (code, message) in _TOP_LEVEL.items():
            if isinstance(original, kind):
                return _with(error, message, {"code": code})
        if isinstance(original, DomainError):
            return _with(error, original.message, {"code": original.code.value})
        error_id = uuid.uuid4().hex[:12]
        log.error(
            "graphql.unexpected_error",
            error_id=error_id,
            path=error.path,
            exc_info=(type(original), original, original.__traceback__),
        )
        return _with(error, "Internal error.", {"code": "INTERNAL", "errorId": error_id})


def _with(error: GraphQLError, message: str, extensions: dict[str, Any]) -> GraphQLError:
    return GraphQLError(
        message=message,
        nodes=error.nodes,
        source=error.source,
        positions=error.positions,
        path=error.path,
        original_error=None,
        extensions=extensions,
    )


def refusal_code(error: GraphQLError) -> str | None:
    """The code of an expected refusal (the caller's fault), None for an unexpected error."""
    original = error.original_error
    if original is None or isinstance(original, GraphQLError):
        code = (error.extensions or {}).get("code")
        return code if isinstance(code, str) else "BAD_REQUEST"
    for kind, (code, _message) in _TOP_LEVEL.items():
        if isinstance(original, kind):
            return code
    if isinstance(original, DomainError):
        return original.code.value
    return None


class ApiSchema(strawberry.Schema):
    """Logs an expected refusal as one structured line, never a traceback.

    Strawberry's default logs every error with its traceback: a stranger's NOT_FOUND
    filled the log with tracebacks and buried real failures. Unexpected errors are
    logged once, with their traceback and id, by `ApiErrors` when it masks them.
    """

    def process_errors(
        self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None
    ) -> None:
        for error in errors:
            code = refusal_code(error)
            if code is not None:
                log.info(
                    "graphql.refused",
                    code=code,
                    message=error.message[:200],
                    path=".".join(str(p) for p in error.path or ()) or None,
                    operation=getattr(execution_context, "operation_name", None),
                )
