"""Every retry policy of the workflows' activities, in one place: each one ends.

Transient failures (a dropped connection, a lock timeout, a busy renderer) retry with a
limit; the failures of ``activities/errors.py`` (missing rows, broken invariants, reused
keys, programming errors) do not retry at all. When a policy gives up, the action's Update
fails with the activity's failure (the API answers a problem, not a 503), and the lock it
held is released.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from activities.errors import NON_RETRYABLE
    from activities.outbox import UNDELIVERABLE
    from domain.effects import DeliveryPolicy, EffectKind

#: Database work of a person's action: about a minute of retries (0.2 s, 0.4 s, … capped
#: at 10 s), then the action fails (503, nothing recorded) and its lock is released.
DB_ATTEMPTS = 10
DB_RETRY = RetryPolicy(
    initial_interval=timedelta(milliseconds=200),
    maximum_interval=timedelta(seconds=10),
    maximum_attempts=DB_ATTEMPTS,
    non_retryable_error_types=list(NON_RETRYABLE),
)
#: A system step of a workflow's own loop (creation, intake, reminders, escalations,
#: lapse, expiry, surveillance): no caller is waiting, and giving up would end the
#: workflow, so a transient failure (the database down for hours) retries for about a day;
#: the non-retryable types still fail at once, visibly.
SYSTEM_ATTEMPTS = 300
SYSTEM_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    maximum_interval=timedelta(minutes=5),
    maximum_attempts=SYSTEM_ATTEMPTS,
    non_retryable_error_types=list(NON_RETRYABLE),
)
#: Rendering and signing a PDF, also while the worker's renderer is busy: about half an hour.
PDF_ATTEMPTS = 60
PDF_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    maximum_interval=timedelta(seconds=30),
    maximum_attempts=PDF_ATTEMPTS,
    non_retryable_error_types=list(NON_RETRYABLE),
)
#: Marking an outbox row delivered or dead.
MARK_RETRY = RetryPolicy(
    maximum_attempts=20,
    maximum_interval=timedelta(seconds=30),
    non_retryable_error_types=list(NON_RETRYABLE),
)


def delivery_retry(policy: DeliveryPolicy, kind: EffectKind) -> RetryPolicy:
    """One outbox delivery's retries, bounded by configuration (``DeliveryPolicy``); when
    they run out the row goes to the dead letter. A PDF retries as ``PDF_RETRY`` does (at
    least): it is mostly waiting for the worker's renderer (``renderer-busy``) during a burst
    of grants, which should not use up a dead-letter budget meant for real failures."""
    if kind in (EffectKind.CERTIFICATE_PDF, EffectKind.CERTIFICATE_CREDENTIAL):
        return RetryPolicy(
            initial_interval=timedelta(seconds=1),
            maximum_interval=timedelta(seconds=30),
            maximum_attempts=max(policy.max_attempts, PDF_ATTEMPTS),
            non_retryable_error_types=[UNDELIVERABLE, *NON_RETRYABLE],
        )
    return RetryPolicy(
        initial_interval=timedelta(seconds=policy.initial_interval),
        backoff_coefficient=policy.backoff,
        maximum_interval=timedelta(seconds=policy.maximum_interval),
        maximum_attempts=policy.max_attempts,
        non_retryable_error_types=[UNDELIVERABLE, *NON_RETRYABLE],
    )
