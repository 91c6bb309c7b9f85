"""The certificate as a PDF: bilingual page, QR code, embedded signed payload, PAdES signature.

Pure functions (bytes in, bytes out) for the certificate activity:

- :func:`render_certificate_pdf` lays out one A4 page in French and Arabic (Arabic shaped
  and right to left, with fpdf2 + HarfBuzz and the Amiri font from ``fontpkg-amiri``),
  with a QR code of the public verification URL, and attaches the signed payload as
  ``mutabaqa-certificate.json`` so the file can be verified offline;
- :func:`extract_signed_payload` reads that attachment back;
- :func:`sign_pdf` adds a PAdES signature (ECDSA P-256) and :func:`verify_pades` checks it
  (both from ``activities/pades.py``, re-exported here).
"""

from __future__ import annotations

import datetime as dt
import io
import json
from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from importlib.resources import as_file, files
from pathlib import Path
from typing import Any, Literal, cast

import segno
from fpdf import FPDF
from pyhanko.pdf_utils.generic import ArrayObject, DictionaryObject, StreamObject
from pyhanko.pdf_utils.reader import PdfFileReader

from activities.certificate_document import (
    CertificateDocument,
    CertificationBody,
    StandardTitle,
    certificate_verify_url,
)
from activities.pades import (
    PadesCheck,
    async_check_pades,
    async_sign_pdf,
    async_verify_pades,
    check_pades,
    sign_pdf,
    verify_pades,
)
from activities.pki import PdfSigningIdentity

__all__ = [
    "ATTACHMENT_NAME",
    "FOOTER_AR",
    "FOOTER_FR",
    "TITLE_AR",
    "TITLE_FR",
    "CertificateDocument",
    "CertificationBody",
    "PadesCheck",
    "PdfSigningIdentity",
    "StandardTitle",
    "async_check_pades",
    "async_sign_pdf",
    "async_verify_pades",
    "certificate_verify_url",
    "check_pades",
    "extract_signed_payload",
    "render_certificate_pdf",
    "sign_pdf",
    "verify_pades",
]

ATTACHMENT_NAME = "mutabaqa-certificate.json"
TITLE_FR = "Certificat de conformité"
TITLE_AR = "شهادة المطابقة"
FOOTER_FR = "Statut actuel : vérifier en ligne"
FOOTER_AR = "تحقق من الحالة الحالية عبر الإنترنت"

_FONT_PACKAGE = "fontpkg_amiri"
_FONT_FILES = {"": "Amiri-Regular.ttf", "B": "Amiri-Bold.ttf"}
_FONT = "Amiri"
_MONO = "Courier"  # core font, for ASCII digests, keys and URLs (others fall back to Amiri)


_DECISION_RULES: dict[str, tuple[str, str]] = {
    "simple": (
        "Acceptation simple (ILAC-G8) : conforme lorsque la valeur mesurée respecte les limites.",
        "القبول البسيط: يكون المنتج مطابقا عندما تقع القيمة المقيسة ضمن الحدود.",
    ),
    "guarded": (
        "Acceptation avec bande de garde (ILAC-G8) : conforme lorsque la valeur mesurée, "
        "augmentée ou diminuée de l'incertitude élargie U (k = 2), respecte les limites.",
        "القبول مع نطاق حماية: يكون المنتج مطابقا عندما تقع القيمة المقيسة مع احتساب "
        "ارتياب القياس الموسع ضمن الحدود.",
    ),
}

_COUNTRY_NAMES = {"MA": "Maroc"}


# --- rendering -----------------------------------------------------------------------------------

_MARGIN = 15.0
_PAGE_W = 210.0
_PAGE_H = 297.0
_CONTENT_W = _PAGE_W - 2 * _MARGIN
_LABEL_W = 36.0
_VALUE_W = _CONTENT_W - 2 * _LABEL_W
_QR_SIZE = 34.0
_BOTTOM_BLOCK_H = 48.0  # QR code, its URL, the signature note and the footer

_INK = (20, 33, 61)
_MUTED = (90, 98, 112)
_RULE = (200, 205, 214)
_ACCENT = (0, 98, 65)


@dataclass(frozen=True)
class _Text:
    """One paragraph of a value cell."""

    text: str
    rtl: bool = False
    size: float = 10.0
    bold: bool = False
    mono: bool = False


def _fr(text: str, **kw: Any) -> _Text:
    return _Text(text, rtl=False, **kw)


def _ar(text: str, **kw: Any) -> _Text:
    return _Text(text, rtl=True, **kw)


@contextmanager
def _font_files() -> Iterator[dict[str, Path]]:
    base = files(_FONT_PACKAGE) / "files"
    with ExitStack() as stack:
        yield {
            style: stack.enter_context(as_file(base / name)) for style, name in _FONT_FILES.items()
        }


class _Page:
    """fpdf2 with the few drawing moves the certificate needs."""

    def __init__(self, pdf: FPDF, number: str) -> None:
        self.pdf = pdf
        self.number = number

    def next_page(self) -> float:
        """Start a continuation page (the content did not fit); return the first free y."""
        self.pdf.add_page()
        self.pdf.set_text_color(*_MUTED)
        half = _CONTENT_W / 2
        line = _fr(f"{TITLE_FR} N° {self.number} (suite)", size=8.5)
        y = self.paragraph(_MARGIN, _MARGIN - 5, half, line)
        y = max(
            y, self.paragraph(_PAGE_W / 2, _MARGIN - 5, half, _ar(f"{TITLE_AR} (تابع)", size=9))
        )
        self.rule(y + 1, _ACCENT, 0.4)
        return y + 4

    def use(self, t: _Text) -> None:
        if t.mono and t.text.isascii():
            self.pdf.set_font(_MONO, "", t.size - 1)
        else:
            self.pdf.set_font(_FONT, "B" if t.bold else "", t.size)
        # HarfBuzz shaping is what Arabic needs (joining forms, right to left); Latin text
        # reads the same without it, and measuring it unshaped costs a fraction.
        self.pdf.set_text_shaping(t.rtl, direction="rtl" if t.rtl else "ltr")

    def line_height(self, t: _Text) -> float:
        return t.size * 0.45 if t.mono else t.size * 0.48

    def paragraph(
        self,
        x: float,
        y: float,
        w: float,
        t: _Text,
        align: Literal["L", "R", "C", "J"] | None = None,
    ) -> float:
        """Write ``t`` in a box of width ``w`` at (x, y); return the y below it."""
        self.use(t)
        self.pdf.set_xy(x, y)
        self.pdf.multi_cell(
            w,
            self.line_height(t),
            t.text,
            align=align or ("R" if t.rtl else "L"),
            new_x="LEFT",
            new_y="NEXT",
        )
        return self.pdf.get_y()

    def height(self, w: float, t: _Text) -> float:
        self.use(t)
        lines = self.pdf.multi_cell(w, self.line_height(t), t.text, dry_run=True, output="LINES")
        return len(cast(list[str], lines)) * self.line_height(t)

    def rule(self, y: float, color: tuple[int, int, int] = _RULE, width: float = 0.2) -> None:
        self.pdf.set_draw_color(*color)
        self.pdf.set_line_width(width)
        self.pdf.line(_MARGIN, y, _PAGE_W - _MARGIN, y)


def _country(code: str) -> str:
    name = _COUNTRY_NAMES.get(code)
    return f"{name} ({code})" if name else code


def _rows(doc: CertificateDocument) -> list[tuple[str, str, list[_Text]]]:
    p = doc.payload
    holder: Mapping[str, Any] = p["holder"]
    product: Mapping[str, Any] = p["product"]
    scheme: Mapping[str, Any] = p["scheme"]
    holder_ar = doc.holder_name_ar or holder.get("name_ar")

    holder_cell = [_fr(str(holder["name"]), bold=True)]
    if holder_ar:
        holder_cell.append(_ar(str(holder_ar), bold=True))
    product_cell = [_fr(str(product["name"]), bold=True)]
    if doc.product_name_ar:
        product_cell.append(_ar(doc.product_name_ar, bold=True))
    scheme_cell = [_fr(f"{scheme['code']} (version {scheme['version']})", bold=True)]
    if doc.scheme_title:
        scheme_cell.append(_fr(doc.scheme_title, size=8.5))
    if doc.scheme_title_ar:
        scheme_cell.append(_ar(doc.scheme_title_ar, size=9))

    titles = {(s.code, s.edition): s for s in doc.standards}
    standards_cell: list[_Text] = []
    for ref in p["standards"]:
        std = titles.get((str(ref["code"]), str(ref["edition"])))
        standards_cell.append(_fr(f"{ref['code']}:{ref['edition']}", bold=True))
        if std and std.title:
            standards_cell.append(_fr(std.title, size=8.5))
        if std and std.title_ar:
            standards_cell.append(_ar(std.title_ar, size=9))

    rule = str(p["decision_rule"])
    rule_fr, rule_ar = _DECISION_RULES.get(rule, (rule, rule))
    rows: list[tuple[str, str, list[_Text]]] = [
        ("Accréditation", "الاعتماد", [_fr(doc.body.accreditation)]),
        ("Titulaire du certificat", "حامل الشهادة", holder_cell),
        ("Identifiant du titulaire", "رقم تعريف الحامل", [_fr(str(holder["registration_id"]))]),
        (
            "Adresse du titulaire",
            "عنوان الحامل",
            [_fr(f"{doc.holder_address} — {_country(str(holder.get('country', '')))}")],
        ),
        ("Produit certifié", "المنتج المشهود له", product_cell),
        (
            "Marque et modèle",
            "العلامة التجارية والطراز",
            [_fr(f"{product['brand']} — {product['model']}")],
        ),
        ("Référentiel de certification", "مخطط الإشهاد", scheme_cell),
        ("Normes et éditions", "المواصفات القياسية وطبعاتها", standards_cell),
        ("Portée de la certification", "نطاق الإشهاد", [_fr(str(p["scope"]))]),
        ("Règle de décision", "قاعدة اتخاذ القرار", [_fr(rule_fr, size=8.5), _ar(rule_ar, size=9)]),
    ]
    if doc.testing_centre:
        centre = [_fr(doc.testing_centre)]
        if doc.testing_centre_ar:
            centre.append(_ar(doc.testing_centre_ar))
        rows.append(("Essais réalisés par", "أجريت الاختبارات لدى", centre))
    rows.append(
        (
            "Rapport d'essai (empreinte)",
            "تقرير الاختبار (البصمة)",
            [_fr(str(p["test_report_digest"]), mono=True, size=7.5)],
        )
    )
    return rows


def _header(page: _Page, doc: CertificateDocument) -> float:
    pdf = page.pdf
    pdf.set_fill_color(*_ACCENT)
    pdf.rect(0, 0, _PAGE_W, 4, style="F")
    half = _CONTENT_W / 2 - 2
    y = 8.0
    pdf.set_text_color(*_MUTED)
    left = page.paragraph(_MARGIN, y, half, _fr("Organisme de certification", size=8))
    right = page.paragraph(_PAGE_W / 2 + 2, y, half, _ar("هيئة الإشهاد", size=8.5))
    pdf.set_text_color(*_INK)
    left = page.paragraph(_MARGIN, left, half, _fr(doc.body.name, bold=True, size=10))
    left = page.paragraph(_MARGIN, left, half, _fr(doc.body.address, size=8.5))
    right = page.paragraph(_PAGE_W / 2 + 2, right, half, _ar(doc.body.name_ar, bold=True, size=11))
    y = max(left, right) + 1.5
    page.rule(y, _ACCENT, 0.5)
    y = page.paragraph(_MARGIN, y + 3, _CONTENT_W, _fr(TITLE_FR, bold=True, size=21), align="C")
    y = page.paragraph(_MARGIN, y, _CONTENT_W, _ar(TITLE_AR, bold=True, size=22), align="C")
    return _key_facts(page, doc, y + 2)


def _key_facts(page: _Page, doc: CertificateDocument, y: float) -> float:
    """Number and issue, issue date and expiry date: three boxes under the title."""
    pdf = page.pdf
    facts = [
        (
            "Numéro et édition",
            "رقم الشهادة والإصدار",
            f"{doc.number} — édition {doc.payload['issue']}",
        ),
        ("Date de délivrance", "تاريخ الإصدار", str(doc.payload["issued_on"])),
        ("Valable jusqu'au", "صالحة إلى غاية", str(doc.payload["valid_until"])),
    ]
    widths = [_CONTENT_W * 0.44, _CONTENT_W * 0.28, _CONTENT_W * 0.28]
    height = 15.0
    x = _MARGIN
    pdf.set_fill_color(242, 246, 244)
    for (label_fr, label_ar, value), w in zip(facts, widths, strict=True):
        pdf.rect(x, y, w - 1.5, height, style="F")
        pdf.set_text_color(*_MUTED)
        page.paragraph(x + 1.5, y + 1, (w - 4.5) / 2, _fr(label_fr, size=7.5))
        page.paragraph(x + 1.5 + (w - 4.5) / 2, y + 1, (w - 4.5) / 2, _ar(label_ar, size=8))
        pdf.set_text_color(*_INK)
        page.paragraph(x + 1.5, y + 7, w - 4.5, _fr(value, bold=True, size=11), align="C")
        x += w
    y += height + 2.5
    statement_fr = (
        "Le présent certificat atteste que le produit désigné ci-dessous a été évalué et jugé "
        "conforme aux exigences du référentiel de certification et des normes indiqués, "
        "selon ISO/IEC 17065."
    )
    statement_ar = (
        "تشهد هيئة الإشهاد، وفقا للمواصفة ISO/IEC 17065، بأن المنتج المبين أدناه قد تم تقييمه "
        "ووجد مطابقا لمتطلبات مخطط الإشهاد والمواصفات القياسية المذكورة."
    )
    y = page.paragraph(_MARGIN, y, _CONTENT_W, _fr(statement_fr, size=9), align="J")
    y = page.paragraph(_MARGIN, y + 0.5, _CONTENT_W, _ar(statement_ar, size=9.5))
    return y + 2


def _table(page: _Page, rows: list[tuple[str, str, list[_Text]]], y: float) -> float:
    pdf = page.pdf
    page.rule(y)
    pad = 1.1
    for label_fr, label_ar, cell in rows:
        fr_label = _fr(label_fr, size=8)
        ar_label = _ar(label_ar, size=8.5)
        needed = 2 * pad + max(
            page.height(_LABEL_W - 2, fr_label),
            page.height(_LABEL_W - 2, ar_label),
            sum(page.height(_VALUE_W - 4, t) for t in cell),
        )
        if y + needed > _PAGE_H - _MARGIN - 10:
            y = page.next_page()
            page.rule(y)
        top = y + pad
        pdf.set_text_color(*_MUTED)
        bottom = page.paragraph(_MARGIN, top, _LABEL_W - 2, fr_label)
        bottom = max(
            bottom, page.paragraph(_PAGE_W - _MARGIN - _LABEL_W + 2, top, _LABEL_W - 2, ar_label)
        )
        pdf.set_text_color(*_INK)
        value_y = top
        for t in cell:
            value_y = page.paragraph(_MARGIN + _LABEL_W + 2, value_y, _VALUE_W - 4, t)
        y = max(bottom, value_y) + pad
        page.rule(y)
    return y


def _qr_png(url: str) -> io.BytesIO:
    buffer = io.BytesIO()
    segno.make(url, error="m", micro=False).save(buffer, kind="png", scale=8, border=4)
    buffer.seek(0)
    return buffer


def _bottom_block(page: _Page, doc: CertificateDocument, y: float) -> None:
    """QR code with its URL, the signature note and the status footer, at the page bottom."""
    pdf = page.pdf
    top = _PAGE_H - _MARGIN - _BOTTOM_BLOCK_H
    if y + 2 > top:
        page.next_page()
    pdf.image(_qr_png(doc.verify_url), x=_MARGIN, y=top, w=_QR_SIZE, h=_QR_SIZE)
    pdf.set_text_color(*_INK)
    page.paragraph(_MARGIN, top + _QR_SIZE, 110, _fr(doc.verify_url, mono=True, size=8))

    note_x = _MARGIN + _QR_SIZE + 5
    note_w = _PAGE_W - _MARGIN - note_x
    note_fr = (
        "Document signé électroniquement par l'organisme de certification (signature PAdES). "
        f"Le contenu signé est joint au fichier ({ATTACHMENT_NAME}) et se vérifie hors ligne "
        "avec la clé publique publiée. Le statut du certificat (actif, suspendu, retiré, "
        "expiré) peut évoluer : scannez le code pour le consulter."
    )
    note_ar = (
        "وثيقة موقعة إلكترونيا من طرف هيئة الإشهاد. المحتوى الموقع مرفق بالملف ويمكن التحقق منه "
        "دون اتصال بواسطة المفتاح العمومي المنشور. قد تتغير حالة الشهادة، امسح الرمز للاطلاع عليها."
    )
    note_y = page.paragraph(note_x, top + 1, note_w, _fr(note_fr, size=8), align="J")
    note_y = page.paragraph(note_x, note_y + 0.5, note_w, _ar(note_ar, size=8.5))
    pdf.set_text_color(*_MUTED)
    page.paragraph(note_x, note_y + 0.5, note_w, _fr(f"Clé : {doc.key_id}", mono=True, size=7.5))

    footer_y = _PAGE_H - _MARGIN - 6
    page.rule(footer_y - 1.5, _ACCENT, 0.4)
    pdf.set_text_color(*_ACCENT)
    half = _CONTENT_W / 2 - 3
    page.paragraph(_MARGIN, footer_y, half, _fr(FOOTER_FR, bold=True, size=10.5), align="R")
    page.paragraph(_PAGE_W / 2 - 3, footer_y, 6, _fr("/", size=10.5), align="C")
    page.paragraph(_PAGE_W / 2 + 3, footer_y, half, _ar(FOOTER_AR, bold=True, size=11), align="L")


def _pdf_date(value: str) -> dt.datetime:
    return dt.datetime.combine(dt.date.fromisoformat(value), dt.time(), dt.UTC)


def render_certificate_pdf(doc: CertificateDocument) -> bytes:
    """Render the certificate as an unsigned PDF (A4 portrait, French and Arabic).

    The output depends only on ``doc`` (the PDF dates are the issue date), so a retried
    activity renders the same bytes.
    """
    issued = _pdf_date(str(doc.payload["issued_on"]))
    pdf = FPDF(orientation="portrait", unit="mm", format="A4")
    pdf.set_margins(_MARGIN, _MARGIN, _MARGIN)
    pdf.set_auto_page_break(False)
    pdf.set_creation_date(issued)
    pdf.set_title(f"{TITLE_FR} {doc.number} — {TITLE_AR}")
    pdf.set_subject(doc.number)
    pdf.set_author(doc.body.name)
    pdf.set_creator("Mutabaqa")
    pdf.set_keywords([doc.number, str(doc.payload["scheme"]["code"]), "ISO/IEC 17065"])
    pdf.set_lang("fr")
    with _font_files() as fonts:
        for style, path in fonts.items():
            pdf.add_font(_FONT, style, str(path))
        pdf.add_page()
        page = _Page(pdf, doc.number)
        y = _header(page, doc)
        y = _table(page, _rows(doc), y)
        _bottom_block(page, doc, y)
        pdf.embed_file(
            bytes=json.dumps(doc.signed_json(), ensure_ascii=False, indent=2).encode(),
            basename=ATTACHMENT_NAME,
            mime_type="application/json",
            modification_date=issued,
            creation_date=issued,
            desc="Certificat signé (Ed25519, JSON canonique RFC 8785) — SPEC 5, schéma v1",
            associated_file_relationship="Data",
        )
        return bytes(pdf.output())


# --- the embedded payload -------------------------------------------------------------------------


def _name_tree_pairs(node: DictionaryObject) -> Iterator[tuple[str, Any]]:
    if "/Names" in node:
        names: ArrayObject = node["/Names"]
        for i in range(0, len(names) - 1, 2):
            yield str(names[i]), names[i + 1]
    for kid in node.get("/Kids", ()):
        yield from _name_tree_pairs(kid.get_object())


def extract_signed_payload(pdf_bytes: bytes) -> dict[str, Any] | None:
    """The ``{certificate, signature, key_id}`` JSON attached as ``mutabaqa-certificate.json``,
    or ``None`` when the file is not a readable PDF or carries no such attachment."""
    try:
        reader = PdfFileReader(io.BytesIO(pdf_bytes), strict=False)
        tree = reader.root["/Names"]["/EmbeddedFiles"]
        for name, spec in _name_tree_pairs(tree):
            if name != ATTACHMENT_NAME:
                continue
            stream: StreamObject = spec.get_object()["/EF"]["/F"].get_object()
            value = json.loads(stream.data)
            return value if isinstance(value, dict) else None
    except Exception:  # pyHanko's read errors, a missing key, bad JSON: nothing usable
        return None
    return None
