"""Mail texts as templates over message catalogues: every kind speaks every language, the
catalogues hold exactly the templates' messages, and the French and Arabic wording users
know is unchanged."""

from __future__ import annotations

import gettext
import subprocess
import sys
import tomllib
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from babel.messages.extract import DEFAULT_KEYWORDS, extract_from_dir
from pydantic import ValidationError

from models.lab import CertificateStatus
from models.notifications import AppealOutcome, NotificationKind, NotifyInput
from models.requests import RequestStatus
from mutabaqa.i18n import (
    TEMPLATES_DIR,
    build_translations,
    catalogue_path,
    languages,
    make_environment,
    read_catalogue,
)
from mutabaqa.mail import compose, render_part, template_name
from mutabaqa.settings import Settings

ROOT = Path(__file__).resolve().parents[2]


def _sample(kind: NotificationKind, **fields: object) -> NotifyInput:
    values: dict[str, object] = {
        "request_id": "0123456789abcdef0123456789abcdef",
        "request_number": "REQ-2026-000123",
        "kind": kind,
        "product_name": "Masque FFP2 Atlas-200",
        "scheme_code": "FFP2-NM-EN-149",
        "reason": "Le rapport de la fiche technique est illisible.",
        "message": "Merci de fournir la fiche technique du média filtrant.",
        "due_at": datetime(2026, 5, 31, 16, 0, tzinfo=UTC),
        "centre_code": "CTTH",
        "centre_name": "Centre technique du textile et de l'habillement",
        "centre_name_ar": "المركز التقني للنسيج والألبسة",
        "stage": "testing",
        "certificate_number": "MA-CTTH-2026-000001",
        "dedupe_key": "wf:1",
    }
    values.update(fields)
    return NotifyInput.model_validate(values)


def _variants(kind: NotificationKind) -> list[NotifyInput]:
    """Every branch of a kind's template: outcomes, statuses, stages, optional fields."""
    extra: list[dict[str, Any]] = [
        {},
        {"reason": None, "message": None, "due_at": None, "certificate_number": None},
    ]
    if kind is NotificationKind.APPEAL_DECIDED:
        extra += [{"appeal_outcome": outcome} for outcome in AppealOutcome]
    if kind is NotificationKind.ESCALATION:
        extra += [{"stage": stage} for stage in [*RequestStatus, "sample_receipt", "decision"]]
    if kind is NotificationKind.CERTIFICATE_STATUS:
        extra += [{"stage": status} for status in CertificateStatus]
    return [_sample(kind, **fields) for fields in extra]


class _MissingTranslation(gettext.NullTranslations):
    """The fallback of a catalogue under test: asked only for messages it lacks."""

    def gettext(self, message: str) -> str:
        raise AssertionError(f"untranslated message: {message!r}")

    def pgettext(self, context: str, message: str) -> str:
        raise AssertionError(f"untranslated message: {message!r} (context {context!r})")

    def ngettext(self, msgid1: str, msgid2: str, n: int) -> str:
        raise AssertionError(f"untranslated message: {msgid1!r}")


def _template_messages() -> set[tuple[str | None, str]]:
    """(context, id) of every message in the templates, extracted as ``pybabel extract``
    does, with the mapping in ``pyproject.toml``."""
    babel = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["babel"]
    method_map = [(entry["pattern"], entry["method"]) for entry in babel["mappings"]]
    options_map = {
        entry["pattern"]: {k: v for k, v in entry.items() if k not in {"method", "pattern"}}
        for entry in babel["mappings"]
    }
    found = set()
    for _, _, message, _, context in extract_from_dir(
        str(TEMPLATES_DIR), method_map, options_map, keywords=DEFAULT_KEYWORDS
    ):
        found.add((context, message if isinstance(message, str) else message[0]))
    return found


def test_french_arabic_and_english_have_catalogues() -> None:
    assert {"fr", "ar", "en"} <= set(languages())


@pytest.mark.parametrize("language", languages())
def test_each_catalogue_translates_exactly_the_templates_messages(language: str) -> None:
    catalogue = read_catalogue(language)
    held = {(message.context, message.id) for message in catalogue if message.id}
    used = _template_messages()
    assert used - held == set(), f"{catalogue_path(language)} lacks these messages"
    assert held - used == set(), f"{catalogue_path(language)} holds messages no template uses"
    for message in catalogue:
        if not message.id:
            continue
        assert message.string, f"{language}: {message.id!r} is not translated"
        assert not message.fuzzy, f"{language}: {message.id!r} is marked fuzzy"
    # Placeholders (%(name)s) of each translation match its source message.
    problems = [(message.id, errors) for message, errors in catalogue.check()]
    assert problems == []


@pytest.mark.parametrize("language", languages())
@pytest.mark.parametrize("kind", list(NotificationKind))
def test_every_kind_renders_in_every_language(kind: NotificationKind, language: str) -> None:
    catalogue = build_translations(language)
    catalogue.add_fallback(_MissingTranslation())
    env = make_environment(catalogue)
    settings = Settings()
    assert (TEMPLATES_DIR / template_name(kind)).is_file()
    for params in _variants(kind):
        part = render_part(env, params, settings, language)
        assert part.title and "\n" not in part.title
        assert params.request_number in part.body
        assert "None" not in part.body and "  \n" not in part.body, part.body


def test_the_information_request_reads_as_before() -> None:
    """The French and Arabic wording of one whole message, as users have been reading it."""
    params = _sample(NotificationKind.INFO_REQUESTED, reason=None)
    settings = Settings(public_base_url="https://mutabaqa.example.ma/")
    subject, body = compose(params, settings)
    assert subject == "[Mutabaqa] REQ-2026-000123 — Demande d'informations / طلب معلومات"
    assert body == (
        "Bonjour,\n"
        "\n"
        "L'organisme de certification vous demande des informations complémentaires sur "
        "votre demande.\n"
        "\n"
        "Demande : REQ-2026-000123\n"
        "Produit : Masque FFP2 Atlas-200\n"
        "Schéma de certification : FFP2-NM-EN-149\n"
        "Message :\n"
        "    Merci de fournir la fiche technique du média filtrant.\n"
        "Date limite : 31/05/2026 17:00 (Africa/Casablanca)\n"
        "\n"
        "Ce qu'il faut faire : Répondez depuis votre espace Mutabaqa (action « Répondre »), "
        "en ajoutant au besoin des documents. Sans réponse à la date limite, la demande "
        "devient caduque.\n"
        "\n"
        "Suivre la demande : https://mutabaqa.example.ma/requests/"
        "0123456789abcdef0123456789abcdef\n"
        "\n"
        "* * *\n"
        "\n"
        "السلام عليكم،\n"
        "\n"
        "تطلب منكم هيئة الإشهاد معلومات إضافية بخصوص طلبكم.\n"
        "\n"
        "رقم الطلب: REQ-2026-000123\n"
        "المنتوج: Masque FFP2 Atlas-200\n"
        "مخطط الإشهاد: FFP2-NM-EN-149\n"
        "الرسالة:\n"
        "    Merci de fournir la fiche technique du média filtrant.\n"
        "آخر أجل: 31/05/2026 17:00 (Africa/Casablanca)\n"
        "\n"
        "ما يجب القيام به: يرجى الرد من خلال فضائكم في منصة مطابقة، مع إضافة الوثائق عند "
        "الاقتضاء. في غياب رد قبل آخر أجل، يسقط الطلب.\n"
        "\n"
        "تتبع الطلب: https://mutabaqa.example.ma/requests/0123456789abcdef0123456789abcdef\n"
        "\n"
        "-- \n"
        "Mutabaqa — Organisme de certification de démonstration / هيئة الإشهاد التجريبية\n"
        "Message envoyé automatiquement ; merci de ne pas y répondre.\n"
        "رسالة آلية، يرجى عدم الرد عليها.\n"
    )


def test_mail_languages_are_a_setting() -> None:
    settings = Settings(mail_languages=["fr", "ar", "en"])
    subject, body = compose(_sample(NotificationKind.LAPSED), settings)
    assert subject.endswith("Demande caduque / سقوط الطلب / Request lapsed")
    french, arabic, english = body.split("\n\n* * *\n\n")
    assert french.startswith("Bonjour,\n") and arabic.startswith("السلام عليكم،\n")
    assert english.startswith("Hello,\n") and "Request: REQ-2026-000123" in english
    assert body.endswith(
        "رسالة آلية، يرجى عدم الرد عليها.\nAutomatic message; please do not reply.\n"
    )


def test_a_language_without_catalogue_is_refused_at_start_up() -> None:
    with pytest.raises(
        ValidationError, match="MUTABAQA_MAIL_LANGUAGES: no message catalogue for xx"
    ):
        Settings(mail_languages=["fr", "xx"])


def test_rendering_mail_loads_no_smtp_client() -> None:
    """The API (the portal) can render mail texts and share catalogues without smtplib."""
    code = (
        "import sys; from mutabaqa.mail import compose; from mutabaqa.i18n import translations; "
        "translations('ar'); print('smtplib' in sys.modules)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "False"
