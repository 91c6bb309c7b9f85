"""The request state machine (SPEC section 4) as pure functions.

One function decides whether an actor may take an action now; the workflow's Update
validators call it, and so does the API to list ``allowed_actions`` — so the two can never
disagree. No I/O and no clock here: facts come in, a refusal or nothing comes out.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pydantic import ValidationError

from models.permissions import ACTION_ROLES, Actor, Role, roles_allow
from models.request_payloads import ACTION_BODIES
from models.requests import RequestStatus

S = RequestStatus

TERMINAL = frozenset({S.CERTIFIED, S.VERIFIED, S.DECLINED, S.WITHDRAWN, S.LAPSED})

#: action → (statuses it may start from, status it leads to; None = computed by the workflow)
TRANSITIONS: dict[str, tuple[frozenset[RequestStatus], RequestStatus | None]] = {
    "submit": (frozenset({S.DRAFT}), S.SUBMITTED),
    "request_info": (frozenset({S.APPLICATION_REVIEW}), S.INFO_REQUESTED),
    "respond": (frozenset({S.INFO_REQUESTED}), S.APPLICATION_REVIEW),
    "decline": (frozenset({S.APPLICATION_REVIEW}), S.DECLINED),
    "accept": (frozenset({S.APPLICATION_REVIEW}), S.AWAITING_SAMPLE),
    "reject_sample": (frozenset({S.AWAITING_SAMPLE}), S.AWAITING_SAMPLE),
    "receive_sample": (frozenset({S.AWAITING_SAMPLE}), S.TESTING),
    "withdraw": (
        frozenset(
            {
                S.DRAFT,
                S.SUBMITTED,
                S.APPLICATION_REVIEW,
                S.INFO_REQUESTED,
                S.AWAITING_SAMPLE,
                S.TESTING,
                S.RESULTS_SUBMITTED,
                S.EVALUATED,
            }
        ),
        S.WITHDRAWN,
    ),
}

#: Actions that are not transitions but appear in ``allowed_actions``.
UPLOAD_DOCUMENT = "upload_document"
DOCUMENT_STATUSES = frozenset({S.DRAFT, S.INFO_REQUESTED})

ACTIONS = tuple(TRANSITIONS)


@dataclass(frozen=True)
class RequestFacts:
    """What the rules need to know about a request."""

    status: RequestStatus
    organization_id: str
    centre_code: str | None = None
    proposed_centre_code: str | None = None
    required_documents: tuple[str, ...] = ()
    documents: frozenset[str] = field(default_factory=frozenset)


class Refusal(Exception):
    """Why an action is refused: HTTP status, problem ``kind``, and a message for people."""

    def __init__(self, status: int, kind: str, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.kind = kind
        self.detail = detail


def acting_role(action: str, actor: Actor) -> Role | None:
    """The role under which ``actor`` takes ``action`` (None: no role of theirs allows it)."""
    allowed = ACTION_ROLES.get(action, frozenset())
    return next((role for role in actor.roles if role in allowed), None)


def can_see(facts: RequestFacts, actor: Actor) -> bool:
    """Tenant scoping: the request is within the actor's reach."""
    if actor.has(Role.MANUFACTURER) and actor.organization_id == facts.organization_id:
        return True
    if (
        actor.has(Role.LAB_TECHNICIAN)
        and actor.centre_code is not None
        and actor.centre_code == facts.centre_code
    ):
        return True
    return actor.has(Role.COMPLIANCE_OFFICER) and facts.status is not S.DRAFT


def _in_tenant(action: str, facts: RequestFacts, actor: Actor) -> bool:
    role = acting_role(action, actor)
    if role is Role.MANUFACTURER:
        return actor.organization_id == facts.organization_id
    if role is Role.LAB_TECHNICIAN:
        return actor.centre_code is not None and actor.centre_code == facts.centre_code
    return role is Role.COMPLIANCE_OFFICER


def check_role(action: str, actor: Actor) -> None:
    """403: decided from roles alone, before anything about the request is revealed."""
    if action not in ACTION_ROLES or action not in TRANSITIONS:
        raise Refusal(404, "unknown-action", f"there is no action {action!r}")
    if not roles_allow(actor.roles, ACTION_ROLES[action]):
        raise Refusal(403, "forbidden", f"your roles do not allow {action!r}")


def check_body(action: str, body: dict[str, object]) -> None:
    try:
        ACTION_BODIES[action].model_validate(body)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise Refusal(422, "invalid-body", f"{where}: {first['msg']}") from None


def check_state(action: str, facts: RequestFacts, actor: Actor, body: dict[str, object]) -> None:
    """409: the action is not allowed now (state, guard)."""
    if facts.status in TERMINAL:
        raise Refusal(409, "request-finished", f"the request is {facts.status.value}")
    sources, _ = TRANSITIONS[action]
    if facts.status not in sources:
        raise Refusal(
            409, "invalid-transition", f"{action!r} is not possible while {facts.status.value}"
        )
    if action == "submit":
        missing = [kind for kind in facts.required_documents if kind not in facts.documents]
        if missing:
            raise Refusal(
                409, "missing-documents", "documents still to upload: " + ", ".join(missing)
            )
    if action == "accept" and not (body.get("centre_code") or facts.proposed_centre_code):
        raise Refusal(
            409, "no-centre", "no technical centre was proposed: give centre_code to accept"
        )


def check(action: str, facts: RequestFacts, actor: Actor, body: dict[str, object]) -> None:
    """Every check, in the order of SPEC section 6: 403 → 404 → 422 → 409."""
    check_role(action, actor)
    if not can_see(facts, actor) or not _in_tenant(action, facts, actor):
        raise Refusal(404, "not-found", "no such request within your reach")
    check_body(action, body)
    check_state(action, facts, actor, body)


def allowed(action: str, facts: RequestFacts, actor: Actor) -> bool:
    """Would ``action`` be accepted now (ignoring the body's contents)?"""
    try:
        check_role(action, actor)
        if not _in_tenant(action, facts, actor):
            return False
        # Body-dependent guards are assumed met (accept lists when a centre could be given).
        check_state(action, facts, actor, {"centre_code": "?"})
    except Refusal:
        return False
    return True


def can_upload_document(facts: RequestFacts, actor: Actor) -> bool:
    return (
        actor.has(Role.MANUFACTURER)
        and actor.organization_id == facts.organization_id
        and facts.status in DOCUMENT_STATUSES
    )


def allowed_actions(facts: RequestFacts, actor: Actor) -> list[str]:
    """The actions ``actor`` may take now, in SPEC order, plus the upload actions."""
    if not can_see(facts, actor):
        return []
    result = [action for action in ACTIONS if allowed(action, facts, actor)]
    if can_upload_document(facts, actor):
        result.append(UPLOAD_DOCUMENT)
    return result
