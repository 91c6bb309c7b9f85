"""Failure types of activities, and the checks that raise them.

A failure that a retry cannot mend (a row that is not there, an invariant that does not
hold, a programming error) is non-retryable: the action fails at once with a clear type,
the request's lock is released, and later actions work. Transient failures (a dropped
database connection, a busy renderer) retry, within the limits of ``workflows/retries.py``.
"""

from __future__ import annotations

from typing import TypeVar

from temporalio.exceptions import ApplicationError

#: A row the activity needs is not in the record.
RECORD_MISSING = "record-missing"
#: The request's row is not in the record (kept apart: the API has long matched it).
REQUEST_MISSING = "request-missing"
#: The stored object differs from the upload.
OBJECT_MISMATCH = "object-mismatch"
#: The values cannot be judged (count, uncertainty under ``guarded``).
INVALID_RESULT = "invalid-result"
#: The record contradicts what the workflow asked for (a broken invariant).
INVARIANT_BROKEN = "invariant-broken"
#: An ``Idempotency-Key`` already recorded with another body.
KEY_REUSED = "idempotency-key-reused"

#: Exceptions Python raises for programming errors: an uncaught one reaches Temporal as an
#: ``ApplicationError`` whose type is the class name, and retrying it cannot help.
PROGRAMMING_ERRORS = [
    "AssertionError",
    "AttributeError",
    "ImportError",
    "IndexError",
    "KeyError",
    "NameError",
    "NotImplementedError",
    "TypeError",
    "UnboundLocalError",
    "ZeroDivisionError",
]

#: Every type above: listed as non-retryable by every activity policy of the workflows.
NON_RETRYABLE = [
    RECORD_MISSING,
    REQUEST_MISSING,
    OBJECT_MISMATCH,
    INVALID_RESULT,
    INVARIANT_BROKEN,
    KEY_REUSED,
    *PROGRAMMING_ERRORS,
]

T = TypeVar("T")


def missing(what: str) -> ApplicationError:
    return ApplicationError(f"{what} is not in the record", type=RECORD_MISSING, non_retryable=True)


def present(value: T | None, what: str) -> T:
    """``value``, or a non-retryable ``record-missing`` failure naming ``what``."""
    if value is None:
        raise missing(what)
    return value


def invariant(holds: bool, detail: str) -> None:
    """A non-retryable ``invariant-broken`` failure unless ``holds``."""
    if not holds:
        raise ApplicationError(detail, type=INVARIANT_BROKEN, non_retryable=True)


def key_reused(key: str) -> ApplicationError:
    """The key was recorded with another body: 422 for the caller, no retry."""
    return ApplicationError(
        "this Idempotency-Key was used with a different body",
        {"status": 422, "kind": KEY_REUSED, "key": key},
        type=KEY_REUSED,
        non_retryable=True,
    )
