"""Public routes of the verifiable credentials (issue 13), rate-limited like ``/verify``.

- ``GET /credentials/{number}``: the W3C credential of the certificate's latest issue;
  ``GET /credentials/{number}/{issue}``: of one issue. Media type ``application/vc``; the
  stored, signed bytes. Until the worker has issued it (just after the PDF), 404
  ``credential-pending`` with ``Retry-After``.
- ``GET /status-lists/{purpose}/{list}``: the signed ``BitstringStatusListCredential`` as
  it stands, or as it stood at ``?timestamp=`` (each version is kept).
- ``GET /verify/{number}/{issue}/pdf``: one issue's signed PDF, the public link each
  credential names (with its ``digestMultibase``); the PDF carries no test data.
- ``GET /verify/{number}?at=`` (in ``api/routes/public.py``): was it valid at that instant?
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query
from fastapi.responses import RedirectResponse, Response
from sqlmodel import Session, select

from api.context import AppContext
from api.deps import SessionDep, SettingsDep, get_context
from api.problems import Problem
from api.ratelimit import public_rate_limit
from api.routes.certificates import pdf_redirect
from api.routes.public import latest_issue
from models.credentials import IssuedCredential, StatusPurpose
from models.lab import Certificate
from records import credentials as records

VC_MEDIA_TYPE = "application/vc"
#: How soon to ask again for a credential being issued (the PDF comes first).
PENDING_RETRY_AFTER = "5"
NO_STORE = {"Cache-Control": "no-store"}

router = APIRouter(tags=["public"], dependencies=[Depends(public_rate_limit)])

_VC_CONTENT: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "The signed credential (W3C VC 2.0, Data Integrity eddsa-jcs-2022).",
        "content": {VC_MEDIA_TYPE: {"schema": {"type": "object"}}},
    },
    404: {"description": "Unknown, or not issued yet (then with `Retry-After`)."},
    429: {"description": "Too many requests from this address; see `Retry-After`."},
}

Number = Annotated[str, Path(min_length=1, max_length=40)]
Issue = Annotated[int, Path(ge=0, le=10_000)]


def _vc(body: str, cache: str) -> Response:
    return Response(body, media_type=VC_MEDIA_TYPE, headers={"Cache-Control": cache})


def _no_certificate(number: str) -> Problem:
    return Problem(
        404,
        "certificate-not-found",
        "Certificate not found",
        f"no certificate has the number {number!r}",
        headers=NO_STORE,
    )


def _issue_row(session: Session, number: str, issue: int | None) -> Certificate:
    if issue is None:
        row = latest_issue(session, number)
    else:
        row = session.exec(
            select(Certificate).where(Certificate.number == number, Certificate.issue == issue)
        ).first()
    if row is None:
        raise _no_certificate(number if issue is None else f"{number}/{issue}")
    return row


def _credential(session: Session, row: Certificate) -> IssuedCredential:
    issued = session.get(IssuedCredential, row.id)
    if issued is None:
        raise Problem(
            404,
            "credential-pending",
            "Not issued yet",
            f"the credential of certificate {row.number} issue {row.issue} is being issued "
            "(after its PDF); try again shortly",
            headers=NO_STORE | {"Retry-After": PENDING_RETRY_AFTER},
        )
    return issued


@router.get(
    "/credentials/{number}",
    summary="The verifiable credential of a certificate's latest issue",
    response_class=Response,
    responses=_VC_CONTENT,
)
def latest_credential(number: Number, session: SessionDep) -> Response:
    issued = _credential(session, _issue_row(session, number, None))
    return _vc(issued.body, "no-store")  # a reissue makes another one the latest


@router.get(
    "/credentials/{number}/{issue}",
    summary="The verifiable credential of one certificate issue",
    response_class=Response,
    responses=_VC_CONTENT,
)
def issue_credential(number: Number, issue: Issue, session: SessionDep) -> Response:
    issued = _credential(session, _issue_row(session, number, issue))
    return _vc(issued.body, "public, max-age=86400")  # signed once, never changed


@router.get(
    "/status-lists/{purpose}/{list_id}",
    summary="A signed status list (Bitstring Status List v1.0), now or at an instant",
    response_class=Response,
    responses={
        200: {
            "description": "The signed BitstringStatusListCredential.",
            "content": {VC_MEDIA_TYPE: {"schema": {"type": "object"}}},
        },
        404: {"description": "No such list (or none published by `timestamp`)."},
        429: {"description": "Too many requests from this address; see `Retry-After`."},
    },
)
def status_list(
    purpose: StatusPurpose,
    list_id: Annotated[int, Path(ge=1, le=1_000_000)],
    session: SessionDep,
    settings: SettingsDep,
    timestamp: Annotated[
        datetime | None,
        Query(description="An instant (RFC 3339, with its offset): the list as it stood then."),
    ] = None,
) -> Response:
    if timestamp is not None and timestamp.tzinfo is None:
        raise Problem(
            400,
            "invalid-query",
            "Invalid timestamp",
            "give the timestamp with its UTC offset, e.g. 2026-06-01T09:00:00Z",
        )
    at = None if timestamp is None else timestamp.astimezone(UTC)
    version = records.latest_version(session, purpose, list_id, at)
    if version is None:
        when = "" if at is None else f" by {at.isoformat()}"
        raise Problem(
            404,
            "status-list-not-found",
            "Status list not found",
            f"no {purpose.value} status list {list_id} was published{when}",
            headers=NO_STORE,
        )
    if at is not None:  # a past version never changes
        return _vc(version.body, "public, max-age=86400")
    # verifiers may cache it for its ttl; so may any cache on the way
    return _vc(version.body, f"public, max-age={settings.status_list_ttl_seconds}")


@router.get(
    "/verify/{number}/{issue}/pdf",
    summary="The signed PDF of one certificate issue (public; no test data)",
    response_class=RedirectResponse,
    status_code=307,
    responses={
        307: {"description": "Redirect to a short-lived link to the PDF."},
        404: {"description": "Unknown, or the PDF is still being made (with `Retry-After`)."},
        429: {"description": "Too many requests from this address; see `Retry-After`."},
    },
)
def public_pdf(
    number: Number,
    issue: Issue,
    session: SessionDep,
    ctx: Annotated[AppContext, Depends(get_context)],
) -> RedirectResponse:
    return pdf_redirect(ctx, _issue_row(session, number, issue))
