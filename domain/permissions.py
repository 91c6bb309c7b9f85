"""Who may do what: the one permission table, applied the same way to every route.

A route or action refused here answers 403 — decided from the caller's roles alone, so it
reveals nothing about the resource. Tenant scoping (own organisation, own centre) and state
guards come after, in ``api/authz.py`` and ``workflows/request_rules.py``.
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict

from domain.statuses import RequestKind


class Role(StrEnum):
    MANUFACTURER = "manufacturer"
    LAB_TECHNICIAN = "lab_technician"
    COMPLIANCE_OFFICER = "compliance_officer"
    ADMIN = "admin"


class Actor(BaseModel):
    """Who acts: carried from the API into workflow Updates and audit events."""

    model_config = ConfigDict(frozen=True)

    user_id: str
    roles: tuple[Role, ...]
    organization_id: str | None = None
    centre_code: str | None = None

    def has(self, *roles: Role) -> bool:
        return any(role in self.roles for role in roles)


class Permission(StrEnum):
    """Route-level permissions (request actions are listed in ``ACTION_ROLES``)."""

    ORGANIZATIONS_MANAGE = "organizations:manage"
    USERS_MANAGE = "users:manage"
    CENTRES_READ = "centres:read"
    SCHEMES_READ = "schemes:read"
    SCHEMES_MANAGE = "schemes:manage"
    PRODUCTS_MANAGE = "products:manage"
    REQUESTS_CREATE = "requests:create"
    REQUESTS_READ = "requests:read"
    DOCUMENTS_UPLOAD = "documents:upload"
    EVIDENCE_UPLOAD = "evidence:upload"
    EVIDENCE_READ = "evidence:read"
    RESULTS_RECORD = "results:record"
    CERTIFICATES_READ = "certificates:read"
    WEBHOOKS_MANAGE = "webhooks:manage"


_ALL = frozenset(Role)
_STAFF_AND_HOLDERS = frozenset({Role.MANUFACTURER, Role.LAB_TECHNICIAN, Role.COMPLIANCE_OFFICER})

ROUTE_ROLES: dict[Permission, frozenset[Role]] = {
    Permission.ORGANIZATIONS_MANAGE: frozenset({Role.ADMIN}),
    Permission.USERS_MANAGE: frozenset({Role.ADMIN}),
    Permission.CENTRES_READ: _ALL,
    Permission.SCHEMES_READ: _ALL,
    Permission.SCHEMES_MANAGE: frozenset({Role.ADMIN}),
    Permission.PRODUCTS_MANAGE: frozenset({Role.MANUFACTURER}),
    Permission.REQUESTS_CREATE: frozenset({Role.MANUFACTURER}),
    Permission.REQUESTS_READ: _STAFF_AND_HOLDERS,
    Permission.DOCUMENTS_UPLOAD: frozenset({Role.MANUFACTURER}),
    Permission.EVIDENCE_UPLOAD: frozenset({Role.LAB_TECHNICIAN}),
    Permission.EVIDENCE_READ: _STAFF_AND_HOLDERS,
    Permission.RESULTS_RECORD: frozenset({Role.LAB_TECHNICIAN}),
    Permission.CERTIFICATES_READ: _STAFF_AND_HOLDERS,
    Permission.WEBHOOKS_MANAGE: frozenset({Role.MANUFACTURER}),
}

#: The kinds of request a manufacturer may open (``POST /requests``). A ``surveillance``
#: request is opened by the system only — the certificate's workflow, when a surveillance
#: falls due — so that no one can stand in for it.
CLIENT_REQUEST_KINDS: frozenset[RequestKind] = frozenset(
    {RequestKind.CERTIFICATION, RequestKind.SAFETY_VERIFICATION}
)

#: Request actions (SPEC section 4) and the roles that may ever take them.
ACTION_ROLES: dict[str, frozenset[Role]] = {
    "submit": frozenset({Role.MANUFACTURER}),
    "respond": frozenset({Role.MANUFACTURER}),
    "withdraw": frozenset({Role.MANUFACTURER}),
    "appeal": frozenset({Role.MANUFACTURER}),
    "request_info": frozenset({Role.COMPLIANCE_OFFICER}),
    "decline": frozenset({Role.COMPLIANCE_OFFICER}),
    "accept": frozenset({Role.COMPLIANCE_OFFICER}),
    "grant": frozenset({Role.COMPLIANCE_OFFICER}),
    "refuse": frozenset({Role.COMPLIANCE_OFFICER}),
    "request_retest": frozenset({Role.COMPLIANCE_OFFICER}),
    "uphold": frozenset({Role.COMPLIANCE_OFFICER}),
    "overturn": frozenset({Role.COMPLIANCE_OFFICER}),
    "reject_sample": frozenset({Role.LAB_TECHNICIAN}),
    "receive_sample": frozenset({Role.LAB_TECHNICIAN}),
    "submit_results": frozenset({Role.LAB_TECHNICIAN}),
    "verify_results": frozenset({Role.LAB_TECHNICIAN}),
    "retract": frozenset({Role.LAB_TECHNICIAN}),
}


def roles_allow(roles: tuple[Role, ...] | list[Role], allowed: frozenset[Role]) -> bool:
    return any(role in allowed for role in roles)
