"""Message catalogues and the Jinja environments that speak them.

Texts users read are Jinja templates (``mutabaqa/templates/``) whose sentences are gettext
messages; each language has one catalogue,
``mutabaqa/locale/<language>/LC_MESSAGES/mutabaqa.po``. The ``.po`` files are the only copy
of the translations: no compiled ``.mo`` is kept in the repository or built at install
time. The first time a process needs a language, Babel reads its ``.po`` and compiles it in
memory (``translations``, cached for the life of the process) — a few milliseconds, and a
catalogue edited in the repository is what runs, with no build step to forget.

Source messages are English; the English catalogue maps them to themselves so that every
language, English included, is a complete catalogue a test can check.

This module imports neither SMTP nor tables: the portal (API) can share the catalogues.
"""

from __future__ import annotations

import gettext
from collections.abc import Callable
from datetime import datetime, timedelta
from functools import cache
from io import BytesIO
from pathlib import Path
from zoneinfo import ZoneInfo

from babel.dates import format_datetime, format_timedelta
from babel.messages.catalog import Catalog
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import Translations
from jinja2 import Environment, FileSystemLoader, StrictUndefined

#: gettext domain: the catalogue's file name.
DOMAIN = "mutabaqa"
LOCALE_DIR = Path(__file__).with_name("locale")
TEMPLATES_DIR = Path(__file__).with_name("templates")


class UnknownLanguage(LookupError):
    """No catalogue for this language (``mutabaqa/locale/<language>/LC_MESSAGES``)."""


def catalogue_path(language: str) -> Path:
    return LOCALE_DIR / language / "LC_MESSAGES" / f"{DOMAIN}.po"


def languages() -> tuple[str, ...]:
    """Languages with a catalogue, sorted."""
    return tuple(sorted(path.parent.parent.name for path in LOCALE_DIR.glob(f"*/*/{DOMAIN}.po")))


def read_catalogue(language: str) -> Catalog:
    """The parsed ``.po`` of ``language``; raises ``UnknownLanguage`` when there is none."""
    path = catalogue_path(language)
    if not path.is_file():
        raise UnknownLanguage(
            f"no message catalogue for language {language!r} (expected {path}); "
            f"available: {', '.join(languages())}"
        )
    with path.open("rb") as source:
        return read_po(source, locale=language, domain=DOMAIN)


def build_translations(language: str) -> Translations:
    """Compile ``language``'s catalogue in memory (fuzzy entries count as untranslated)."""
    compiled = BytesIO()
    write_mo(compiled, read_catalogue(language), use_fuzzy=False)
    compiled.seek(0)
    return Translations(compiled, domain=DOMAIN)


@cache
def translations(language: str) -> Translations:
    """``build_translations``, once per process and language."""
    return build_translations(language)


def _indented_lines(text: str) -> list[str]:
    """The lines of ``text`` (stripped), each but the empty ones indented by four spaces."""
    return ["    " + line if line else "" for line in text.strip().splitlines()]


def make_environment(catalogue: gettext.NullTranslations) -> Environment:
    """A Jinja environment over ``mutabaqa/templates`` speaking ``catalogue``.

    Plain-text settings: no autoescaping, a block tag's own line leaves no blank line
    (``trim_blocks``, ``lstrip_blocks``), whitespace inside ``{% trans %}`` is collapsed
    (the ``trimmed`` policy, also set for extraction in ``pyproject.toml``), and an
    undefined variable is an error rather than an empty string.
    """
    env = Environment(
        loader=FileSystemLoader(TEMPLATES_DIR),
        extensions=["jinja2.ext.i18n"],
        autoescape=False,
        trim_blocks=True,
        lstrip_blocks=True,
        undefined=StrictUndefined,
    )
    env.policies["ext.i18n.trimmed"] = True
    install: Callable[..., None] = env.install_gettext_translations  # type: ignore[attr-defined]
    install(catalogue, newstyle=True)
    env.filters["indented_lines"] = _indented_lines
    return env


#: The Babel locale that formats each portal language's dates and numbers (Arabic as
#: written in Morocco: Latin digits, so numbers read the same in every language).
PORTAL_LOCALES = {"ar": "ar_MA", "fr": "fr_MA", "en": "en_GB"}


@cache
def portal_environment(language: str) -> Environment:
    """The portal's HTML templates (``mutabaqa/templates/portal``) speaking ``language``:
    autoescaped, the same ``{% trans %}`` policy as the mail, a ``when(timezone)`` filter
    formatting a date and time per language and ``duration`` a number of seconds."""
    locale = PORTAL_LOCALES[language]
    env = Environment(
        loader=FileSystemLoader(TEMPLATES_DIR / "portal"),
        extensions=["jinja2.ext.i18n"],
        autoescape=True,
        trim_blocks=True,
        lstrip_blocks=True,
        undefined=StrictUndefined,
    )
    env.policies["ext.i18n.trimmed"] = True
    install: Callable[..., None] = env.install_gettext_translations  # type: ignore[attr-defined]
    install(translations(language), newstyle=True)

    def when(value: datetime, timezone: str) -> str:
        return format_datetime(value, "medium", tzinfo=ZoneInfo(timezone), locale=locale)

    def duration(seconds: float) -> str:
        return format_timedelta(timedelta(seconds=seconds), threshold=1.5, locale=locale)

    env.filters["when"] = when
    env.filters["duration"] = duration
    return env


@cache
def environment(language: str) -> Environment:
    """The shared environment of ``language`` (built once per process)."""
    return make_environment(translations(language))
