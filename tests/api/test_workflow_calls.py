"""Which Temporal refusals the API answers with 503 + Retry-After (the client retries with
the same key) rather than a 500: an unreachable or slow server, and a workflow that cannot
take an Update right now (seen when an action arrives around a certificate's reissue)."""

from __future__ import annotations

from temporalio.service import RPCError, RPCStatusCode

from api.workflow_calls import try_again_later

#: The status Temporal sent when an Update met a workflow whose task had just failed.
NOT_READY = (
    b"\x08\t\x12TUnable to perform workflow execution update due to unexpected workflow task "
    b"failure.\x1aJ\nHtype.googleapis.com/temporal.api.errordetails.v1.WorkflowNotReadyFailure"
)


def test_a_workflow_not_ready_for_an_update_is_a_passing_refusal() -> None:
    assert try_again_later(RPCError("not ready", RPCStatusCode.FAILED_PRECONDITION, NOT_READY))


def test_an_unreachable_or_slow_server_is_a_passing_refusal() -> None:
    assert try_again_later(RPCError("down", RPCStatusCode.UNAVAILABLE, b""))
    assert try_again_later(RPCError("slow", RPCStatusCode.DEADLINE_EXCEEDED, b""))


def test_a_server_killed_mid_call_or_at_its_limits_is_a_passing_refusal() -> None:
    """As the fault suite saw them: Temporal SIGKILLed while the API waited on an Update,
    and a workflow with ten Updates in flight (the server's limit)."""
    assert try_again_later(RPCError("transport error", RPCStatusCode.UNKNOWN, b""))
    limit = "limit on number of concurrent in-flight updates has been reached (10)"
    assert try_again_later(RPCError(limit, RPCStatusCode.RESOURCE_EXHAUSTED, b""))


def test_other_preconditions_and_errors_are_not() -> None:
    assert not try_again_later(RPCError("other", RPCStatusCode.FAILED_PRECONDITION, b"other"))
    assert not try_again_later(RPCError("bad", RPCStatusCode.INVALID_ARGUMENT, b""))
    assert not try_again_later(RPCError("bug", RPCStatusCode.UNKNOWN, b""))
