"""Impartiality (ISO/IEC 17065 §4.2, ISO/IEC 17025 §4.1) in the pure core: nobody acts as
staff — technician or officer — on a request or certificate of their own organisation."""

from __future__ import annotations

import pytest

from domain import certificate_lifecycle as lifecycle
from domain.permissions import ACTION_ROLES, Actor, Role
from domain.request_rules import (
    RECORD_RESULT,
    TRANSITIONS,
    UPLOAD_EVIDENCE,
    Refusal,
    RequestFacts,
    allowed_actions,
    can_test,
    check,
    check_result,
)
from domain.statuses import CertificateStatus, RequestStatus

S = RequestStatus
PLAN = {"CO2": True}
STAFF_ACTIONS = sorted(
    action
    for action, roles in ACTION_ROLES.items()
    if roles & {Role.LAB_TECHNICIAN, Role.COMPLIANCE_OFFICER}
)
#: A body each staff action accepts.
BODY: dict[str, dict[str, object]] = {
    "request_info": {"message": "More please."},
    "decline": {"reason": "Out of scope."},
    "accept": {"centre_code": "CTTH"},
    "reject_sample": {"reason": "Damaged."},
    "receive_sample": {"sample_ref": "S-1", "condition": "Sealed"},
    "retract": {"reason": "Wrong balance."},
    "refuse": {"reason": "Fails."},
    "request_retest": {"items": ["CO2"], "reason": "Again."},
    "uphold": {"reason": "Confirmed."},
    "overturn": {"reason": "Error."},
}


def insider(org: str | None = "org-a") -> Actor:
    """Manufacturer of ``org``, and also technician at CTTH and compliance officer."""
    roles = (Role.MANUFACTURER, Role.LAB_TECHNICIAN, Role.COMPLIANCE_OFFICER)
    return Actor(user_id="insider", roles=roles, organization_id=org, centre_code="CTTH")


def facts_for(action: str, organization_id: str) -> RequestFacts:
    """A request of ``organization_id`` in a status from which ``action`` would be taken,
    with every other guard satisfied."""
    status = sorted(TRANSITIONS[action][0])[0]
    return RequestFacts(
        status=status,
        organization_id=organization_id,
        centre_code="CTTH",
        proposed_centre_code="CTTH",
        plan=PLAN,
        round_results=frozenset(PLAN),
        verdicts={"CO2": "pass"},
        refused_by="someone-else",
        appeal_open=True,
    )


@pytest.mark.parametrize("action", STAFF_ACTIONS)
def test_a_staff_action_on_ones_own_organisation_is_refused(action: str) -> None:
    facts = facts_for(action, "org-a")
    with pytest.raises(Refusal) as refused:
        check(action, facts, insider(), BODY.get(action, {}))
    assert (refused.value.status, refused.value.kind) == (409, "impartiality")
    assert "organisation" in refused.value.detail
    assert action not in allowed_actions(facts, insider())


@pytest.mark.parametrize("action", STAFF_ACTIONS)
def test_the_same_person_acts_on_another_organisations_request(action: str) -> None:
    facts = facts_for(action, "org-b")
    check(action, facts, insider(), BODY.get(action, {}))  # no refusal
    assert action in allowed_actions(facts, insider())


def test_staff_without_an_organisation_are_not_concerned() -> None:
    facts = facts_for("grant", "org-a")
    check(
        "grant",
        facts,
        insider(org=None).model_copy(update={"roles": (Role.COMPLIANCE_OFFICER,)}),
        {},
    )


def test_the_insider_still_acts_as_the_manufacturer() -> None:
    draft = RequestFacts(status=S.DRAFT, organization_id="org-a")
    assert "withdraw" in allowed_actions(draft, insider())
    check("withdraw", draft, insider(), {"reason": "Not needed."})


def test_results_and_evidence_on_ones_own_organisation_are_refused() -> None:
    testing = RequestFacts(status=S.TESTING, organization_id="org-a", centre_code="CTTH", plan=PLAN)
    with pytest.raises(Refusal) as refused:
        check_result("CO2", testing, insider())
    assert (refused.value.status, refused.value.kind) == (409, "impartiality")
    assert not can_test(testing, insider())
    listed = allowed_actions(testing, insider())
    assert RECORD_RESULT not in listed and UPLOAD_EVIDENCE not in listed

    elsewhere = RequestFacts(
        status=S.TESTING, organization_id="org-b", centre_code="CTTH", plan=PLAN
    )
    check_result("CO2", elsewhere, insider())
    assert {RECORD_RESULT, UPLOAD_EVIDENCE} <= set(allowed_actions(elsewhere, insider()))


@pytest.mark.parametrize("action", ["suspend", "withdraw", "reissue"])
def test_an_officer_may_not_act_on_their_organisations_certificate(action: str) -> None:
    active = CertificateStatus.ACTIVE
    with pytest.raises(Refusal) as refused:
        lifecycle.check(action, active, "org-a", "CTTH", insider())
    assert (refused.value.status, refused.value.kind) == (409, "impartiality")
    assert action not in lifecycle.allowed_actions(active, "org-a", "CTTH", insider())
    lifecycle.check(action, active, "org-b", "CTTH", insider())
    # As the holder, the insider may still terminate their own certificate.
    assert "terminate" in lifecycle.allowed_actions(active, "org-a", "CTTH", insider())


def test_restore_on_ones_own_suspended_certificate_is_refused() -> None:
    suspended = CertificateStatus.SUSPENDED
    with pytest.raises(Refusal, match="impartiality"):
        lifecycle.check("restore", suspended, "org-a", "CTTH", insider())
