"""A refused action, shown in the reader's language.

The server's refusal (a ``Problem``: its ``kind`` and an English ``detail``) becomes a
:class:`Refused`: the kind, reduced to one of :data:`KINDS` (anything else is ``other``),
whose sentence the page shows through gettext (``refusals.html`` holds the sentences, so
``pybabel extract`` finds them and every catalogue translates them), with the server's
detail below it, marked English.

The kinds are those of ``domain.request_rules`` and ``domain.certificate_lifecycle``
(``Refusal``), of the workflow calls (``api.workflow_calls``) and of ``api.problems``.
"""

from __future__ import annotations

from dataclasses import dataclass

from api.problems import Problem

#: Every kind with a sentence of its own (``refusals.html``'s ``SENTENCE``).
KINDS = frozenset(
    {
        "forbidden",
        "not-found",
        "unknown-action",
        "invalid-body",
        "request-finished",
        "certificate-finished",
        "invalid-transition",
        "impartiality",
        "separation-of-duties",
        "missing-documents",
        "no-centre",
        "results-missing",
        "mandatory-item-not-passed",
        "not-in-retest",
        "conflict",
        "idempotency-key-reused",
        "too-many-requests",
        "workflow-unavailable",
        "database-unavailable",
        "database-busy",
        "action-failed",
        "action-not-recorded",
        "self-lockout",
        "no-organization",
        "webhook-target-not-allowed",
        "other",
    }
)


@dataclass(frozen=True)
class Refused:
    kind: str  # one of KINDS
    detail: str  # the server's words (English)


def refused(problem: Problem) -> Refused:
    return Refused(problem.kind if problem.kind in KINDS else "other", problem.detail or "")
