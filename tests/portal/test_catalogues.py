"""The catalogue guard: no user-visible text in a template escapes the catalogues.

Every template of the portal (``mutabaqa/templates/portal/*.html``) and of the mail
(``mutabaqa/templates/mail/*.txt``) is lexed with Jinja's own lexer. Its literal text
(``data`` tokens, outside ``{% trans %}`` blocks), once the expressions and tags are set
aside and the HTML markup removed, must hold no letter: punctuation, digits and symbols
(``·``, ``→``, ``—``) are fine, words go through ``_()``. The attributes users read
(``alt``, ``title``, ``aria-label``, ``placeholder``, a button's ``value``...) are held to
the same rule, and so are the words an expression prints as they are
(``{{ x or "none" }}``). And every ``_()`` takes a literal message, which extraction can see.

That every catalogue translates every message the templates use (no more, no fuzzy entry)
is ``tests/mutabaqa/test_mail.py``'s check, whose extraction covers these templates too
(``test_the_catalogue_check_covers_the_portal`` here proves it).
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path

import pytest
from jinja2 import Environment, nodes

from mutabaqa.i18n import TEMPLATES_DIR
from tests.mutabaqa.test_mail import _template_messages

#: Attributes whose value a user reads or hears (screen readers announce them).
READ_ATTRIBUTES = frozenset(
    {"alt", "title", "aria-label", "aria-description", "aria-roledescription", "placeholder"}
)
#: Inputs whose ``value`` is their visible label.
BUTTON_INPUTS = frozenset({"submit", "button", "reset"})
#: Stands for an expression or a ``{% trans %}`` block in the rebuilt text: no letter.
HOLE = "\u2063"  # INVISIBLE SEPARATOR
#: Stands for the n-th ``{{ expression }}`` in the rebuilt text (private-use characters).
MARK_OPEN, MARK_CLOSE = "\ue000", "\ue001"
MARKER = re.compile(f"{MARK_OPEN}(\\d+){MARK_CLOSE}")
#: printf placeholders of a ``format`` filter's string (``"%.2f"|format(x)``).
PRINTF = re.compile(r"%[-#0 +]*\d*(?:\.\d+)?[sdifgeExXr%]")
#: Text in these elements is code a user types or copies (a command, a file name): exempt,
#: as is text in an element marked ``translate="no"`` (HTML's own "not to translate").
CODE_ELEMENTS = frozenset({"code", "kbd", "samp", "pre", "var"})
VOID_ELEMENTS = frozenset(
    {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "wbr"}
)
GETTEXT = frozenset({"_", "gettext", "ngettext", "pgettext", "npgettext"})
#: ``name="value"`` in literal text: attributes a macro writes into a tag, not words.
ATTRIBUTE_FRAGMENT = re.compile(r'[\w:-]+="[^"<>]*"')
#: A link's own address shown as its text (a path or URL, no space): not a word.
LOCATION = re.compile(r"^(/|[a-z][a-z0-9+.-]*://)\S*$")


def templates() -> list[Path]:
    return sorted(
        [*(TEMPLATES_DIR / "portal").glob("*.html"), *(TEMPLATES_DIR / "mail").glob("*.txt")]
    )


def _environment() -> Environment:
    # The lexer only needs the i18n tags and the whitespace policy of mutabaqa/i18n.py.
    return Environment(extensions=["jinja2.ext.i18n"], trim_blocks=True, lstrip_blocks=True)


def has_letters(text: str) -> bool:
    return any(unicodedata.category(char).startswith("L") for char in text)


@dataclass(frozen=True)
class Finding:
    line: int
    text: str
    where: str  # "text" or the attribute's name

    def __str__(self) -> str:
        return f"line {self.line}: {self.where} {self.text.strip()!r}"


def _marker(index: int) -> str:
    return f"{MARK_OPEN}{index}{MARK_CLOSE}"


def _rebuild(source: str) -> tuple[str, list[str]]:
    """The template's literal text, each ``{{ expression }}`` replaced by a marker (its index
    in the list of expressions' sources returned beside), each ``{% trans %}`` block by
    ``HOLE``, tags by nothing; on the same lines as in the template."""
    pieces: list[str] = []
    expressions: list[str] = []
    line = 1
    in_trans = 0
    block_names: list[str] = []
    in_block = False
    expression: list[str] | None = None
    for lineno, kind, value in _environment().lex(source):
        if lineno > line:
            pieces.append("\n" * (lineno - line))
            line = lineno
        if kind == "data":
            pieces.append(HOLE if in_trans else value)
            line += value.count("\n")
        elif kind == "block_begin":
            in_block, block_names = True, []
        elif kind == "name" and in_block:
            block_names.append(value)
        elif kind == "block_end":
            in_block = False
            if block_names[:1] == ["trans"]:
                in_trans += 1
            elif block_names[:1] == ["endtrans"]:
                in_trans -= 1
        elif kind == "variable_begin":
            expression = []
        elif kind == "variable_end" and expression is not None:
            pieces.append(HOLE if in_trans else _marker(len(expressions)))
            expressions.append("".join(expression))
            expression = None
        elif expression is not None:
            expression.append(value)
    return "".join(pieces), expressions


def _printed_strings(expression: nodes.Node) -> list[str]:
    """String constants an expression prints as they are: ``{{ x or "words" }}``,
    ``{{ "words" if y else z }}``, ``{{ "words"|upper }}`` (not arguments, keys or tests;
    a ``format`` filter's own placeholders left out)."""
    if isinstance(expression, nodes.Const):
        return [expression.value] if isinstance(expression.value, str) else []
    if isinstance(expression, nodes.CondExpr):
        branches = [expression.expr1, expression.expr2]
        return [found for branch in branches if branch for found in _printed_strings(branch)]
    if isinstance(expression, nodes.Concat):
        return [found for part in expression.nodes for found in _printed_strings(part)]
    if isinstance(expression, nodes.Or | nodes.And):
        return _printed_strings(expression.left) + _printed_strings(expression.right)
    if isinstance(expression, nodes.Filter) and expression.node is not None:
        printed = _printed_strings(expression.node)
        if expression.name == "format":
            printed = [PRINTF.sub("", text) for text in printed]
        return printed
    return []


class _TextFinder(HTMLParser):
    def __init__(self, expressions: list[str]) -> None:
        super().__init__(convert_charrefs=True)
        self.expressions = expressions
        self.findings: list[Finding] = []
        self.open: list[tuple[str, bool]] = []  # (element, its text is exempt)

    def _exempt(self) -> bool:
        return any(exempt for _, exempt in self.open)

    def _check_printed(self, text: str, line: int) -> str:
        """Report the words the expressions in ``text`` print as they are; ``text`` with its
        markers replaced by ``HOLE``."""
        for index in MARKER.findall(text):
            output = _environment().parse("{{" + self.expressions[int(index)] + "}}").body[0]
            assert isinstance(output, nodes.Output)
            for printed in _printed_strings(output.nodes[0]):
                if has_letters(printed):
                    self.findings.append(Finding(line, printed, "printed"))
        return MARKER.sub(HOLE, text)

    def handle_data(self, data: str) -> None:
        if self._exempt():
            return
        data = ATTRIBUTE_FRAGMENT.sub(HOLE, data)  # a macro's attributes, outside a tag
        data = self._check_printed(data, self.getpos()[0])
        if not has_letters(" ".join(word for word in data.split() if not LOCATION.match(word))):
            return
        first = next(i for i, char in enumerate(data) if has_letters(char))
        line = self.getpos()[0] + data[:first].count("\n")
        self.findings.append(Finding(line, data.replace(HOLE, "…"), "text"))

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._check_attributes(tag, attrs)
        if tag not in VOID_ELEMENTS:
            exempt = tag in CODE_ELEMENTS or dict(attrs).get("translate") == "no"
            self.open.append((tag, exempt))

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._check_attributes(tag, attrs)

    def handle_endtag(self, tag: str) -> None:
        for depth in range(len(self.open) - 1, -1, -1):
            if self.open[depth][0] == tag:
                del self.open[depth:]
                return

    def _check_attributes(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        read = set(READ_ATTRIBUTES)
        if tag == "button" or (tag == "input" and values.get("type") in BUTTON_INPUTS):
            read.add("value")
        for name, value in attrs:
            if name in read and value:
                value = self._check_printed(value, self.getpos()[0])
                if has_letters(value):
                    self.findings.append(Finding(self.getpos()[0], value, f"{name}="))


def _untranslatable_calls(source: str) -> list[Finding]:
    """``_()``/``gettext()`` calls whose message is not a literal string (extraction cannot
    see it, so no catalogue can translate it)."""
    found = []
    for call in _environment().parse(source).find_all(nodes.Call):
        named = isinstance(call.node, nodes.Name) and call.node.name in GETTEXT
        if named and (not call.args or not isinstance(call.args[0], nodes.Const)):
            assert isinstance(call.node, nodes.Name)
            found.append(Finding(call.lineno, call.node.name + "(...)", "call"))
    return found


def literal_text(source: str) -> list[Finding]:
    """What in a template's source a user would read without it passing through ``_()``."""
    text, expressions = _rebuild(source)
    finder = _TextFinder(expressions)
    finder.feed(text)
    finder.close()
    found = finder.findings + _untranslatable_calls(source)
    return sorted(found, key=lambda finding: finding.line)


@pytest.mark.parametrize("path", templates(), ids=lambda path: f"{path.parent.name}/{path.name}")
def test_no_template_holds_text_outside_the_catalogues(path: Path) -> None:
    findings = literal_text(path.read_text(encoding="utf-8"))
    assert not findings, f"{path}: text outside _():\n" + "\n".join(map(str, findings))


def test_the_guard_reports_literal_text() -> None:
    source = (
        '{% extends "base.html" %}\n'
        "{% block content %}\n"
        "<h1>{{ _('Requests') }}</h1>\n"
        "<p>Nothing yet.</p>\n"
        '<img src="/static/x.png" alt="A logo">\n'
        '<a href="/" title="{{ _(\'Home\') }}" aria-label="Home">→ {{ number }} · 12</a>\n'
        '<input type="submit" value="Send"><input type="hidden" name="csrf" value="abc">\n'
        "{% if x %}Draft{% endif %}{{ _(label) }}\n"
        "<dd>{{ centre or 'none' }} {{ 'Yes' if ok else _('No') }} {{ '—' if a }}</dd>\n"
        "<p>{% trans %}Translated {{ n }} words{% endtrans %} — 3</p>\n"
        '<p><code>mutabaqa verify x.pdf</code> <a href="/k.json">/k.json</a></p>\n'
        '<td translate="no">(U = {{ u }})</td><p>Kept <b>out</b> too</p>\n'
        "{% endblock %}\n"
    )
    found = [
        (finding.line, finding.where, finding.text.strip()) for finding in literal_text(source)
    ]
    assert found == [
        (4, "text", "Nothing yet."),
        (5, "alt=", "A logo"),
        (6, "aria-label=", "Home"),
        (7, "value=", "Send"),
        (8, "text", "Draft…"),  # … stands for the expression after it
        (8, "call", "_(...)"),
        (9, "printed", "none"),
        (9, "printed", "Yes"),
        (12, "text", "Kept"),
        (12, "text", "out"),
        (12, "text", "too"),
    ]


def test_the_guard_lets_translated_and_symbolic_text_pass() -> None:
    source = (
        "<title>{% block title %}{% endblock %} · {{ _('Portal') }}</title>\n"
        "<nav aria-label=\"{{ _('Language') }}\">"
        '<a lang="{{ code }}" class="x">{{ name }}</a></nav>\n'
        "<td>{{ a }} → {{ b }}</td><dd>{{ c or '—' }}</dd>&nbsp;&#8594; 2026-05-31 (%)\n"
        "{# A comment speaks to developers. #}\n"
        '<rect data-on="{{ \'true\' if a else \'false\' }}" x="{{ "%.2f"|format(w) }}"/>\n'
        "<td>{{ '%.1f %%'|format(rate) }}</td>\n"
        '{% macro described(name) %} aria-describedby="{{ name }}-error"{% endmacro %}\n'
    )
    assert literal_text(source) == []


def test_the_catalogue_check_covers_the_portal() -> None:
    """``test_mail.py`` compares each catalogue with the messages extracted from
    ``mutabaqa/templates``: the portal's messages are among them."""
    messages = {message for _, message in _template_messages()}
    for path in (TEMPLATES_DIR / "portal").glob("*.html"):
        calls = [
            call.args[0].value
            for call in _environment().parse(path.read_text()).find_all(nodes.Call)
            if isinstance(call.node, nodes.Name)
            and call.node.name == "_"
            and call.args
            and isinstance(call.args[0], nodes.Const)
        ]
        assert set(calls) <= messages, path
    assert {"Skip to content", "Log in", "Draft"} <= messages
