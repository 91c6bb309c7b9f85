"""Payloads of the ``notify`` activity: who must hear about what happened to a request.

The workflow decides *that* someone is told (SPEC section 4: the manufacturer whenever it
must act or a decision is taken; staff when a stage overruns its target); the activity
looks up the recipients, writes the bilingual e-mail and sends it.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, Field


class NotificationKind(StrEnum):
    """What happened. Every kind but ``escalation`` is addressed to the manufacturer."""

    #: The officer asked for information; ``message`` and ``due_at`` (answer deadline).
    INFO_REQUESTED = "info_requested"
    #: The answer is still missing (75 % of the delay); ``due_at``.
    INFO_REMINDER = "info_reminder"
    #: No answer by the deadline: the request is closed.
    LAPSED = "lapsed"
    #: The application was declined; ``reason``.
    DECLINED = "declined"
    #: The application was accepted: send the sample to ``centre_code``.
    ACCEPTED = "accepted"
    #: The centre rejected the sample; ``reason``; send another one.
    SAMPLE_REJECTED = "sample_rejected"
    #: The request was withdrawn (``reason`` optional).
    WITHDRAWN = "withdrawn"
    #: A stage overran its target (``stage``, ``due_at`` = the target); staff-facing.
    ESCALATION = "escalation"
    #: Certification granted (``certificate_number`` when known).
    CERTIFIED = "certified"
    #: Safety verification passed; the signed test report is issued.
    VERIFIED = "verified"
    #: Certification refused; ``reason``; ``due_at`` = end of the appeal window when known.
    REFUSED = "refused"
    #: The officer asked for a new test round; ``reason``.
    RETEST_REQUESTED = "retest_requested"
    #: An appeal was decided (``appeal_outcome``, ``reason``).
    APPEAL_DECIDED = "appeal_decided"
    #: A certificate's status changed (``stage`` = the new status, or ``reissued`` for a new
    #: issue under the same number; ``certificate_number``, ``reason``).
    CERTIFICATE_STATUS = "certificate_status"


#: Kinds addressed to staff (compliance officers and the centre's technicians).
STAFF_KINDS = frozenset({NotificationKind.ESCALATION})


class AppealOutcome(StrEnum):
    UPHELD = "upheld"  # the refusal stands, final
    OVERTURNED = "overturned"  # back to evaluation, decided by someone else


class NotifyInput(BaseModel):
    request_id: str
    request_number: str
    kind: NotificationKind
    product_name: str
    scheme_code: str
    reason: str | None = None
    message: str | None = None
    due_at: datetime | None = None
    centre_code: str | None = None
    #: Unique per notification, e.g. ``f"{workflow_id}:{event_seq}"``; a retried or repeated
    #: notification with the same key carries the same ``Message-ID``.
    dedupe_key: str = Field(min_length=1, max_length=500)
    # Optional details; the activity fills the centre's names from the database when unset.
    centre_name: str | None = None
    centre_name_ar: str | None = None
    #: The stage that overran (``escalation``), e.g. ``testing``.
    stage: str | None = None
    certificate_number: str | None = None
    appeal_outcome: AppealOutcome | None = None


class NotifyResult(BaseModel):
    #: Addresses the SMTP server accepted (or would have been sent to when ``sent`` is False).
    recipients: list[str]
    message_id: str
    #: False when SMTP is not configured or nobody is to be notified.
    sent: bool
    #: Addresses the server refused while accepting the others (the message was not resent).
    refused: list[str] = Field(default_factory=list)
