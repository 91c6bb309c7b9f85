"""Calling request workflows from the API: Updates with a bounded wait, errors as problems."""

from __future__ import annotations

import asyncio
from typing import Any, TypeVar

from temporalio.client import (
    WorkflowHandle,
    WorkflowUpdateFailedError,
    WorkflowUpdateRPCTimeoutOrCancelledError,
)
from temporalio.exceptions import ActivityError, ApplicationError, RetryState
from temporalio.service import RPCError, RPCStatusCode

from api.problems import Problem
from domain.keys import update_id
from models.request_payloads import ActionInput, ActionResult

RETRY_AFTER_SECONDS = 5


def unavailable() -> Problem:
    return Problem(
        503,
        "workflow-unavailable",
        "Try again shortly",
        "the request's workflow did not answer in time; repeating the call with the same "
        "Idempotency-Key is safe",
        headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
    )


def activity_failed(failure: ActivityError) -> Problem:
    """An action whose activity failed for good: nothing was recorded, the request's lock is
    free again. A transient failure that outlasted its retries may pass (503); a failure
    that no retry can mend is the server's fault (500), named by its type."""
    cause = failure.cause
    if isinstance(cause, ApplicationError):
        kind, message = cause.type or "error", cause.message
    else:  # a timeout, or a cancellation
        kind, message = type(cause).__name__ if cause else "error", str(cause or failure)
    if failure.retry_state is not RetryState.NON_RETRYABLE_FAILURE:
        return Problem(
            503,
            "action-not-recorded",
            "Try again shortly",
            f"the action could not be recorded yet ({kind}); nothing was changed, and "
            "repeating the call with the same Idempotency-Key is safe",
            headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
        )
    return Problem(
        500,
        "action-failed",
        "Action failed",
        f"the action could not be recorded ({kind}: {message}); nothing was changed and "
        "later actions on this request are not blocked",
        failure_type=kind,
    )


def problem_from_failure(error: BaseException) -> Problem:
    """Turn a validator's or handler's refusal into the problem the caller should see."""
    cause = error.cause if isinstance(error, WorkflowUpdateFailedError) else error
    if isinstance(cause, ActivityError):
        inner = cause.cause
        if not (isinstance(inner, ApplicationError) and inner.details):
            return activity_failed(cause)
        cause = inner  # a refusal raised by the activity (e.g. a reused key): its status
    if isinstance(cause, ApplicationError) and cause.details:
        info: dict[str, Any] = cause.details[0] if isinstance(cause.details[0], dict) else {}
        status = int(info.get("status", 409))
        kind = str(info.get("kind", cause.type or "conflict"))
        extra = {
            k: info[k]
            for k in ("request_status", "certificate_status", "allowed_actions")
            if k in info
        }
        if status == 503:
            return Problem(
                503,
                kind,
                "Try again shortly",
                cause.message,
                headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
                **extra,
            )
        return Problem(status, kind, _title(status), cause.message, **extra)
    if isinstance(cause, ApplicationError):
        return Problem(409, cause.type or "conflict", "Not allowed now", cause.message)
    return Problem(409, "conflict", "Not allowed now", str(cause))


def _title(status: int) -> str:
    return {
        403: "Forbidden",
        404: "Not found",
        409: "Not allowed now",
        422: "Invalid request",
    }.get(status, "Refused")


R = TypeVar("R")


def try_again_later(error: RPCError) -> bool:
    """Whether Temporal's refusal is passing: the server is unreachable or slow, or the
    workflow cannot take an Update right now (``WorkflowNotReadyFailure``: its current
    workflow task failed or is being retried, e.g. around a continue-as-new). Also: the
    connection broke mid-call (the server was killed: UNKNOWN "transport error") and the
    server's limits (RESOURCE_EXHAUSTED, e.g. too many Updates in flight on one workflow)."""
    if error.status in (
        RPCStatusCode.UNAVAILABLE,
        RPCStatusCode.DEADLINE_EXCEEDED,
        RPCStatusCode.RESOURCE_EXHAUSTED,
    ):
        return True
    if error.status is RPCStatusCode.UNKNOWN and error.message == "transport error":
        return True
    return error.status is RPCStatusCode.FAILED_PRECONDITION and (
        b"WorkflowNotReadyFailure" in (error.raw_grpc_status or b"")
    )


async def send_action(
    handle: WorkflowHandle[Any, Any],
    name: str,
    command: ActionInput,
    wait_seconds: float,
    result_type: type[R] = ActionResult,  # type: ignore[assignment]
) -> R:
    """Send one action Update (its id is the command's key) and wait at most ``wait_seconds``."""
    try:
        async with asyncio.timeout(wait_seconds):
            result: R = await handle.execute_update(
                name,
                command,
                id=update_id(command.key, command.body_hash),
                result_type=result_type,
            )
            return result
    except (TimeoutError, WorkflowUpdateRPCTimeoutOrCancelledError):
        raise unavailable() from None
    except WorkflowUpdateFailedError as exc:
        raise problem_from_failure(exc) from None
    except RPCError as exc:
        if exc.status is RPCStatusCode.NOT_FOUND:
            raise Problem(
                409, "request-finished", "Not allowed now", "the request's workflow has ended"
            ) from None
        if try_again_later(exc):
            raise unavailable() from None
        raise
