"""The public verification page (the QR code's landing page) on the portal's rendering.

``GET /verify/{number}`` stays in ``api.routes.public`` (with its rate limit, its JSON twin
and its content negotiation); for a browser it calls :func:`verify_html`, which renders
the page in ONE language — ``?lang=``, then the remembered cookie, then
``Accept-Language`` — with the language switcher, under the portal's strict policy.
"""

from __future__ import annotations

from fastapi import Request
from fastapi.responses import HTMLResponse

from api.portal.render import render
from models.certificates import PublicCertificate
from mutabaqa.settings import Settings

#: The page answers JSON or HTML by ``Accept``, and speaks the reader's language.
PUBLIC_HEADERS = {
    "Vary": "Accept, Cookie, Accept-Language",
    "Referrer-Policy": "no-referrer",
}


def verify_html(
    request: Request, settings: Settings, number: str, cert: PublicCertificate | None
) -> HTMLResponse:
    """The verification page of ``cert`` (404 page when no certificate has ``number``)."""
    if cert is None:
        return render(
            request,
            settings,
            "public_not_found.html",
            status_code=404,
            headers=PUBLIC_HEADERS,
            number=number[:100],
        )
    return render(request, settings, "public_verify.html", headers=PUBLIC_HEADERS, cert=cert)
