"""The request state machine (SPEC section 4) as pure functions.

One function decides whether an actor may take an action now; the workflow's Update
validators call it, and so does the API to list ``allowed_actions`` — so the two can never
disagree. No I/O and no clock here: facts come in, a refusal or nothing comes out.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

from pydantic import ValidationError

from domain.actions import ACTION_BODIES
from domain.permissions import ACTION_ROLES, Actor, Role, roles_allow
from domain.statuses import RequestKind, RequestStatus

S = RequestStatus

#: Finished for good: every action answers 409. (``refused`` is finished once final.)
TERMINAL = frozenset({S.CERTIFIED, S.VERIFIED, S.DECLINED, S.WITHDRAWN, S.LAPSED})

#: action → (statuses it may start from, status it leads to; None = decided by the workflow)
TRANSITIONS: dict[str, tuple[frozenset[RequestStatus], RequestStatus | None]] = {
    "submit": (frozenset({S.DRAFT}), S.SUBMITTED),
    "request_info": (frozenset({S.APPLICATION_REVIEW}), S.INFO_REQUESTED),
    "respond": (frozenset({S.INFO_REQUESTED}), S.APPLICATION_REVIEW),
    "decline": (frozenset({S.APPLICATION_REVIEW}), S.DECLINED),
    "accept": (frozenset({S.APPLICATION_REVIEW}), S.AWAITING_SAMPLE),
    "reject_sample": (frozenset({S.AWAITING_SAMPLE}), S.AWAITING_SAMPLE),
    "receive_sample": (frozenset({S.AWAITING_SAMPLE}), S.TESTING),
    "submit_results": (frozenset({S.TESTING}), S.RESULTS_SUBMITTED),
    "verify_results": (frozenset({S.RESULTS_SUBMITTED}), S.EVALUATED),
    "retract": (frozenset({S.RESULTS_SUBMITTED}), S.TESTING),
    "grant": (frozenset({S.EVALUATED}), None),  # certified, or verified (safety verification)
    "refuse": (frozenset({S.EVALUATED}), S.REFUSED),
    "request_retest": (frozenset({S.EVALUATED}), S.TESTING),
    "appeal": (frozenset({S.REFUSED}), S.UNDER_APPEAL),
    "uphold": (frozenset({S.UNDER_APPEAL}), S.REFUSED),
    "overturn": (frozenset({S.UNDER_APPEAL}), S.EVALUATED),
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
UPLOAD_EVIDENCE = "upload_evidence"
RECORD_RESULT = "record_result"
DOCUMENT_STATUSES = frozenset({S.DRAFT, S.INFO_REQUESTED})

ACTIONS = tuple(TRANSITIONS)
DECISIONS = frozenset({"grant", "refuse", "request_retest"})


@dataclass(frozen=True)
class RequestFacts:
    """What the rules need to know about a request."""

    status: RequestStatus
    organization_id: str
    centre_code: str | None = None
    proposed_centre_code: str | None = None
    required_documents: tuple[str, ...] = ()
    documents: frozenset[str] = field(default_factory=frozenset)
    kind: RequestKind = RequestKind.CERTIFICATION
    round: int = 1
    #: The test plan: item code → mandatory.
    plan: Mapping[str, bool] = field(default_factory=dict)
    #: Items to test in this round (round > 1); empty in round 1 (every item).
    retest_items: frozenset[str] = field(default_factory=frozenset)
    #: Items with a result recorded in this round.
    round_results: frozenset[str] = field(default_factory=frozenset)
    #: The verdict that counts for each item (this round's or the one kept from before).
    verdicts: Mapping[str, str] = field(default_factory=dict)
    #: Who recorded any result of this round; of any round; who verified results.
    round_recorders: frozenset[str] = field(default_factory=frozenset)
    recorders: frozenset[str] = field(default_factory=frozenset)
    verifiers: frozenset[str] = field(default_factory=frozenset)
    refused_by: str | None = None
    #: After an overturn, the officer who refused may not take the next decision.
    excluded_decider: str | None = None
    #: Refused, within the appeal window and no appeal filed yet for this refusal.
    appeal_open: bool = False
    #: The information request's deadline; the appeal window's end; whether an appeal of
    #: the last refusal was filed (kept so a transition can be applied to the facts).
    info_due_at: datetime | None = None
    appeal_until: datetime | None = None
    appeal_filed: bool = False

    @property
    def items_this_round(self) -> frozenset[str]:
        return self.retest_items if self.round > 1 else frozenset(self.plan)

    @property
    def finished(self) -> bool:
        return self.status in TERMINAL or (self.status is S.REFUSED and not self.appeal_open)


class Refusal(Exception):
    """Why an action is refused: HTTP status, problem ``kind``, and a message for people."""

    def __init__(self, status: int, kind: str, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.kind = kind
        self.detail = detail


#: Roles that act for the certification body: never on their own organisation's requests.
STAFF_ROLES = frozenset({Role.LAB_TECHNICIAN, Role.COMPLIANCE_OFFICER})


def impartiality_refusal(role: Role | None, organization_id: str, actor: Actor) -> Refusal | None:
    """ISO/IEC 17065 §4.2, 17025 §4.1: someone who belongs to the organisation whose request
    or certificate it is does not act on it as staff (technician or officer)."""
    if role in STAFF_ROLES and actor.organization_id == organization_id:
        return Refusal(
            409,
            "impartiality",
            f"you belong to the organisation concerned: as {role}, you may not act on its "
            "requests or certificates (impartiality); another member of staff must",
        )
    return None


def check_impartial(role: Role | None, organization_id: str, actor: Actor) -> None:
    refusal = impartiality_refusal(role, organization_id, actor)
    if refusal is not None:
        raise refusal


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


def check_body(action: str, body: Mapping[str, object]) -> None:
    try:
        ACTION_BODIES[action].model_validate(dict(body))
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise Refusal(422, "invalid-body", f"{where}: {first['msg']}") from None


def check_items(action: str, facts: RequestFacts, body: Mapping[str, object]) -> None:
    """404: an item code in the body that is not in the request's plan."""
    if action == "request_retest":
        items = body.get("items")
        unknown = [i for i in items if i not in facts.plan] if isinstance(items, list) else []
        if unknown:
            raise Refusal(404, "not-found", "not in the test plan: " + ", ".join(map(str, unknown)))


def _separation(actor: Actor, facts: RequestFacts) -> None:
    if actor.user_id in facts.recorders or actor.user_id in facts.verifiers:
        raise Refusal(
            409,
            "separation-of-duties",
            "the decision is taken by someone who neither recorded nor verified results",
        )
    if facts.excluded_decider == actor.user_id:
        raise Refusal(
            409,
            "separation-of-duties",
            "after an overturned refusal, the next decision is not taken by the one who refused",
        )


def check_state(action: str, facts: RequestFacts, actor: Actor, body: Mapping[str, object]) -> None:
    """409: the action is not allowed now (impartiality, state, guard, separation of duties)."""
    check_impartial(acting_role(action, actor), facts.organization_id, actor)
    if facts.finished:
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
    elif action == "accept" and not (body.get("centre_code") or facts.proposed_centre_code):
        raise Refusal(
            409, "no-centre", "no technical centre was proposed: give centre_code to accept"
        )
    elif action == "submit_results":
        due = [
            code
            for code in sorted(facts.items_this_round)
            if facts.plan.get(code) and code not in facts.round_results
        ]
        if due:
            raise Refusal(
                409, "results-missing", "mandatory items without a result: " + ", ".join(due)
            )
    elif action == "verify_results":
        if actor.user_id in facts.round_recorders:
            raise Refusal(
                409,
                "separation-of-duties",
                "results are verified by someone who recorded none of this round's results",
            )
    elif action in DECISIONS:
        _separation(actor, facts)
        if action == "grant":
            failing = [
                code
                for code, mandatory in sorted(facts.plan.items())
                if mandatory and facts.verdicts.get(code) != "pass"
            ]
            if failing:
                raise Refusal(
                    409,
                    "mandatory-item-not-passed",
                    "mandatory items that do not pass: " + ", ".join(failing),
                )
    elif action in ("uphold", "overturn") and actor.user_id == facts.refused_by:
        raise Refusal(
            409, "separation-of-duties", "an appeal is decided by someone other than the refuser"
        )


def check(action: str, facts: RequestFacts, actor: Actor, body: Mapping[str, object]) -> None:
    """Every check, in the order of SPEC section 6: 403 → 404 → 422 → 409."""
    check_role(action, actor)
    if not can_see(facts, actor) or not _in_tenant(action, facts, actor):
        raise Refusal(404, "not-found", "no such request within your reach")
    check_items(action, facts, body)
    check_body(action, body)
    check_state(action, facts, actor, body)


#: Bodies that satisfy body-dependent guards, to ask "would this action be accepted now?".
_PROBE_BODY: dict[str, dict[str, object]] = {"accept": {"centre_code": "?"}}


def allowed(action: str, facts: RequestFacts, actor: Actor) -> bool:
    """Would ``action`` be accepted now (with a suitable body)?"""
    try:
        check_role(action, actor)
        if not _in_tenant(action, facts, actor):
            return False
        check_state(action, facts, actor, _PROBE_BODY.get(action, {}))
    except Refusal:
        return False
    return True


def can_upload_document(facts: RequestFacts, actor: Actor) -> bool:
    return (
        actor.has(Role.MANUFACTURER)
        and actor.organization_id == facts.organization_id
        and facts.status in DOCUMENT_STATUSES
    )


def evidence_conflict(facts: RequestFacts, actor: Actor) -> Refusal | None:
    """The impartiality refusal of a technician's evidence upload, if any."""
    return impartiality_refusal(Role.LAB_TECHNICIAN, facts.organization_id, actor)


def can_test(facts: RequestFacts, actor: Actor) -> bool:
    """Record results and upload evidence: an impartial technician of the assigned centre,
    in testing."""
    return (
        actor.has(Role.LAB_TECHNICIAN)
        and actor.centre_code is not None
        and actor.centre_code == facts.centre_code
        and facts.status is S.TESTING
        and evidence_conflict(facts, actor) is None
    )


def check_result(item_code: str, facts: RequestFacts, actor: Actor) -> None:
    """Guards of ``record_result`` in SPEC order (403 → 404 → 409)."""
    if not actor.has(Role.LAB_TECHNICIAN):
        raise Refusal(403, "forbidden", "only laboratory technicians record results")
    if actor.centre_code is None or actor.centre_code != facts.centre_code:
        raise Refusal(404, "not-found", "no such request within your reach")
    if item_code not in facts.plan:
        raise Refusal(404, "not-found", f"item {item_code!r} is not in the test plan")
    check_impartial(Role.LAB_TECHNICIAN, facts.organization_id, actor)
    if facts.finished:
        raise Refusal(409, "request-finished", f"the request is {facts.status.value}")
    if facts.status is not S.TESTING:
        raise Refusal(
            409,
            "invalid-transition",
            f"results are recorded while testing, not {facts.status.value}",
        )
    if facts.round > 1 and item_code not in facts.retest_items:
        raise Refusal(
            409, "not-in-retest", f"item {item_code!r} is not re-tested in round {facts.round}"
        )


def allowed_actions(facts: RequestFacts, actor: Actor) -> list[str]:
    """The actions ``actor`` may take now, in SPEC order, plus the upload/record actions."""
    if not can_see(facts, actor):
        return []
    result = [action for action in ACTIONS if allowed(action, facts, actor)]
    if can_upload_document(facts, actor):
        result.append(UPLOAD_DOCUMENT)
    if can_test(facts, actor):
        result += [RECORD_RESULT, UPLOAD_EVIDENCE]
    return result
