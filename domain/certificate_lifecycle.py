"""The certificate's lifecycle (SPEC section 5) as pure functions, shared by the
certificate workflow's validators and the API."""

from __future__ import annotations

from domain.permissions import Actor, Role
from domain.request_rules import Refusal, check_impartial
from domain.statuses import CertificateStatus

C = CertificateStatus

#: Finished for good.
FINAL = frozenset({C.WITHDRAWN, C.EXPIRED, C.SUPERSEDED, C.TERMINATED})

#: action → (statuses it may start from, status it leads to, roles that may take it)
ACTIONS: dict[str, tuple[frozenset[CertificateStatus], CertificateStatus, frozenset[Role]]] = {
    "suspend": (frozenset({C.ACTIVE}), C.SUSPENDED, frozenset({Role.COMPLIANCE_OFFICER})),
    "restore": (frozenset({C.SUSPENDED}), C.ACTIVE, frozenset({Role.COMPLIANCE_OFFICER})),
    "withdraw": (
        frozenset({C.ACTIVE, C.SUSPENDED}),
        C.WITHDRAWN,
        frozenset({Role.COMPLIANCE_OFFICER}),
    ),
    "reissue": (frozenset({C.ACTIVE}), C.SUPERSEDED, frozenset({Role.COMPLIANCE_OFFICER})),
    "terminate": (frozenset({C.ACTIVE, C.SUSPENDED}), C.TERMINATED, frozenset({Role.MANUFACTURER})),
}


def check_role(action: str, actor: Actor) -> None:
    if action not in ACTIONS:
        raise Refusal(404, "unknown-action", f"there is no certificate action {action!r}")
    if not any(role in ACTIONS[action][2] for role in actor.roles):
        raise Refusal(403, "forbidden", f"your roles do not allow {action!r}")


def can_see(organization_id: str, centre_code: str, actor: Actor) -> bool:
    return (
        actor.has(Role.COMPLIANCE_OFFICER)
        or (actor.has(Role.MANUFACTURER) and actor.organization_id == organization_id)
        or (actor.has(Role.LAB_TECHNICIAN) and actor.centre_code == centre_code)
    )


def check(
    action: str, status: CertificateStatus, organization_id: str, centre_code: str, actor: Actor
) -> None:
    """403 → 404 → 409, as for requests (an officer of the holder's organisation: 409
    impartiality)."""
    check_role(action, actor)
    if not can_see(organization_id, centre_code, actor):
        raise Refusal(404, "not-found", "no such certificate within your reach")
    if action == "terminate" and actor.organization_id != organization_id:
        raise Refusal(404, "not-found", "no such certificate within your reach")
    role = next((role for role in actor.roles if role in ACTIONS[action][2]), None)
    check_impartial(role, organization_id, actor)
    if status in FINAL:
        raise Refusal(409, "certificate-finished", f"the certificate is {status.value}")
    sources, _, _ = ACTIONS[action]
    if status not in sources:
        raise Refusal(409, "invalid-transition", f"{action!r} is not possible while {status.value}")


def allowed_actions(
    status: CertificateStatus, organization_id: str, centre_code: str, actor: Actor
) -> list[str]:
    allowed = []
    for action in ACTIONS:
        try:
            check(action, status, organization_id, centre_code, actor)
        except Refusal:
            continue
        allowed.append(action)
    return allowed
