"""The words of a notification e-mail: subject and plain-text body, in every mail language.

One template per notification kind, ``mutabaqa/templates/mail/<kind>.txt``, sets the
``title`` (the subject's words), ``what`` (what happened) and ``todo`` (what to do) and
includes the shared layout; its sentences are gettext messages translated by the
catalogues (``mutabaqa.i18n``). A message is that template rendered once per language of
``Settings.mail_languages`` (French, then Arabic, by default), separated by ``* * *``.

Pure: no SMTP and no database, so the API can render the same texts.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from jinja2 import Environment

from models.notifications import NotificationKind, NotifyInput
from mutabaqa.i18n import environment
from mutabaqa.settings import Settings

#: Names stored in French and Arabic (centres, the body): Arabic mail uses the Arabic one,
#: every other language the French one.
ARABIC = "ar"

#: Between two languages' versions of the body.
LANGUAGE_SEPARATOR = "\n\n* * *\n\n"


def template_name(kind: NotificationKind) -> str:
    """One template per kind: adding a kind is adding ``mail/<kind>.txt`` and its messages."""
    return f"mail/{kind.value}.txt"


def request_link(settings: Settings, request_id: str) -> str:
    return f"{settings.public_base_url.rstrip('/')}/requests/{request_id}"


def format_when(moment: datetime, settings: Settings) -> str:
    """``31/05/2026 17:00 (Africa/Casablanca)``: the business time zone, the same digits in
    every language (as Moroccan administrations write dates). Babel's locale patterns would
    give each language its own format, which is not what the administration writes."""
    try:
        zone = ZoneInfo(settings.timezone)
        zone_name = settings.timezone
    except (ZoneInfoNotFoundError, ValueError):
        zone, zone_name = ZoneInfo("UTC"), "UTC"
    aware = moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
    return f"{aware.astimezone(zone):%d/%m/%Y %H:%M} ({zone_name})"


def _centre_label(params: NotifyInput, language: str) -> str:
    code = params.centre_code or "?"
    label = f"{params.centre_name} ({code})" if params.centre_name else code
    if language == ARABIC and params.centre_name_ar:
        return f"{params.centre_name_ar} ({code})"
    return label


def body_name(settings: Settings, language: str) -> str:
    return settings.body_name_ar if language == ARABIC else settings.body_name


def mail_context(params: NotifyInput, settings: Settings, language: str) -> dict[str, Any]:
    """The variables every mail template sees (see ``templates/mail/_layout.txt``)."""
    base_url = settings.public_base_url.rstrip("/")
    return {
        "number": params.request_number,
        "product": params.product_name,
        "scheme": params.scheme_code,
        "reason": params.reason,
        "message": params.message,
        "due": format_when(params.due_at, settings) if params.due_at is not None else None,
        "link": request_link(settings, params.request_id),
        "centre": _centre_label(params, language),
        "stage": params.stage,
        "certificate": params.certificate_number,
        "verify_base": f"{base_url}/verify/",
        "appeal_outcome": params.appeal_outcome.value if params.appeal_outcome else None,
        "appeal_days": round(settings.appeal_window_seconds / 86400),
    }


@dataclass(frozen=True)
class MailPart:
    """One language's version: the subject's words and the body."""

    title: str
    body: str


def render_part(
    env: Environment, params: NotifyInput, settings: Settings, language: str
) -> MailPart:
    template = env.get_template(template_name(params.kind))
    module = template.make_module(mail_context(params, settings, language))
    title = module.__dict__["title"]  # the template's top-level ``{% set title %}``
    return MailPart(title=str(title).strip(), body=str(module))


def compose(params: NotifyInput, settings: Settings) -> tuple[str, str]:
    """The subject and plain-text body of one notification, in every mail language."""
    languages = settings.mail_languages
    parts = [render_part(environment(lang), params, settings, lang) for lang in languages]
    subject = f"[Mutabaqa] {params.request_number} — " + " / ".join(p.title for p in parts)
    names = dict.fromkeys(body_name(settings, lang) for lang in languages)
    footer = [
        "-- ",  # the signature separator
        "Mutabaqa — " + " / ".join(names),
        *(environment(lang).get_template("mail/_footer.txt").render() for lang in languages),
    ]
    body = LANGUAGE_SEPARATOR.join(part.body for part in parts)
    return subject, body + "\n\n" + "\n".join(footer) + "\n"
