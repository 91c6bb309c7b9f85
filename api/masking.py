"""Who acted, as the person reading may see it — the one masking rule of the API.

Technicians and officers see every name. A manufacturer sees their own name and those of
their organisation's people (anyone who acted as ``manufacturer`` on a request or
certificate they can reach is of their organisation), and for staff only the role they
acted in (SPEC: staff names are not shown to manufacturers). The system is ``system``.
"""

from __future__ import annotations

from domain.permissions import Actor, Role

SYSTEM = "system"


def shown_name(viewer: Actor, actor_id: str | None, role: str | None, names: dict[str, str]) -> str:
    """How ``viewer`` sees the person ``actor_id`` who acted as ``role`` (``names``: the
    names known for user ids)."""
    if actor_id is None:
        return SYSTEM
    staff_viewer = viewer.has(Role.LAB_TECHNICIAN, Role.COMPLIANCE_OFFICER)
    if staff_viewer or actor_id == viewer.user_id or role == Role.MANUFACTURER.value:
        return names.get(actor_id) or role or "you"
    return role or "staff"
