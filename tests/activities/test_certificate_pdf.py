"""The certificate PDF as its readers meet it (SPEC section 5): text read back with poppler,
the QR code decoded from the rendered page with zbar, the attached signed payload, and the
PAdES signature checked by pyHanko and by poppler's ``pdfsig``.

Pure: no service is started. Set ``MUTABAQA_PDF_PREVIEW=/path/page.png`` to keep a picture
of page 1 for a human look.
"""

from __future__ import annotations

import io
import os
import re
import shutil
import stat
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

import pytest
from asn1crypto import cms
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import pkcs7
from cryptography.x509.oid import ExtendedKeyUsageOID
from fpdf import FPDF
from pyhanko.pdf_utils.generic import NameObject, TextStringObject
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter

from activities.certificate_pdf import (
    ATTACHMENT_NAME,
    FOOTER_AR,
    FOOTER_FR,
    TITLE_AR,
    TITLE_FR,
    CertificateDocument,
    CertificationBody,
    StandardTitle,
    certificate_verify_url,
    check_pades,
    extract_signed_payload,
    render_certificate_pdf,
    sign_pdf,
    verify_pades,
)
from activities.pki import (
    CA_KEY_FILE,
    SIGNING_KEY_FILE,
    PdfSigningIdentity,
    SigningIdentityError,
    create_dev_ca,
    load_signing_identity,
    load_trust_roots,
)

#: The SPEC's worked example (test-vectors/certificate-v1.json): payload and its signature.
PAYLOAD: dict[str, Any] = {
    "v": "1",
    "number": "MA-CTTH-2026-000001",
    "issue": "0",
    "kid": "shcuwjR-O_G2IP5pyEITyZ_3RepiyL1m71LrpgbGNZI",
    "issuer": {"name": "Organisme de certification de démonstration", "country": "MA"},
    "holder": {
        "name": "Atlas Protective Wear SARL",
        "name_ar": "أطلس للملابس الواقية",
        "registration_id": "001234567000089",
        "country": "MA",
    },
    "product": {"name": "Respirator FFP2 NR", "brand": "Atlas", "model": "AT-200"},
    "scheme": {"code": "FFP2-NM-EN-149", "version": "1"},
    "standards": [{"code": "NM EN 149", "edition": "2001+A1:2009"}],
    "scope": "Filtering half mask against particles, class FFP2 NR",
    "decision_rule": "guarded",
    "test_report_digest": (
        "sha256:1066737b93f531023a41d0995decf9b65ab03ff6cae3d4ec0191280cf0afcf87"
    ),
    "issued_on": "2026-11-29",
    "valid_until": "2029-11-28",
}
SIGNATURE = "kFgPGcV5JBGgj4uaspPD51C4QqLDHIlf9XumvWJ3uEytQnLCZ7rgF7xg6WiGU3etsH_TtXTGVDdsIiM4n5CRCw"
VERIFY_URL = "https://mutabaqa.example.ma/verify/MA-CTTH-2026-000001"
BODY = CertificationBody(
    name="Organisme de certification de démonstration",
    name_ar="هيئة الإشهاد التجريبية",
    address="Casablanca, Maroc",
    accreditation="ISO/IEC 17065 — accréditation de démonstration",
)

#: Arabic presentation forms: shaped glyphs mapped back to these would mean the text was
#: shaped "by hand" and is not searchable or copyable as the letters a reader types.
PRESENTATION_FORMS = re.compile("[\ufb50-\ufdff\ufe70-\ufeff]")
#: Bidi embedding marks pdftotext wraps right-to-left runs in.
BIDI_MARKS = re.compile("[\u202a-\u202e]")


def make_document(**changes: Any) -> CertificateDocument:
    fields: dict[str, Any] = {
        "payload": PAYLOAD,
        "signature": SIGNATURE,
        "body": BODY,
        "holder_address": "Zone industrielle Sidi Bernoussi, lot 12, 20600 Casablanca",
        "verify_url": VERIFY_URL,
        "product_name_ar": "كمامة ترشيحية FFP2 NR",
        "scheme_title": "Demi-masques filtrants contre les particules, classe FFP2",
        "scheme_title_ar": "أنصاف الأقنعة الترشيحية للوقاية من الجسيمات، الفئة FFP2",
        "standards": [
            StandardTitle(
                "NM EN 149",
                "2001+A1:2009",
                "Appareils de protection respiratoire — Demi-masques filtrants contre les "
                "particules — Exigences, essais, marquage",
            )
        ],
        "testing_centre": "Centre Technique du Textile et de l'Habillement (CTTH)",
        "testing_centre_ar": "المركز التقني للنسيج والألبسة",
    }
    fields.update(changes)
    return CertificateDocument(**fields)


def run(*args: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(a) for a in args], capture_output=True, text=True, timeout=60, cwd=cwd
    )


def pdf_text(pdf: bytes, tmp_path: Path) -> str:
    path = tmp_path / "text.pdf"
    path.write_bytes(pdf)
    done = run("pdftotext", "-enc", "UTF-8", path, "-")
    assert done.returncode == 0, done.stderr
    return done.stdout


def page_png(pdf: bytes, tmp_path: Path, page: int = 1) -> Path:
    path = tmp_path / "page.pdf"
    path.write_bytes(pdf)
    prefix = tmp_path / f"page{page}"
    pages = ("-f", str(page), "-l", str(page))
    done = run("pdftoppm", "-png", "-r", "150", *pages, "-singlefile", path, prefix)
    assert done.returncode == 0, done.stderr
    return prefix.with_suffix(".png")


def qr_codes(png: Path) -> list[str]:
    done = run("zbarimg", "--raw", "-q", png)
    return [line for line in done.stdout.splitlines() if line]


def page_count(pdf: bytes, tmp_path: Path) -> int:
    path = tmp_path / "info.pdf"
    path.write_bytes(pdf)
    done = run("pdfinfo", path)
    match = re.search(r"^Pages:\s+(\d+)", done.stdout, re.M)
    assert match, done.stdout
    return int(match.group(1))


def der_value(blob: bytes) -> bytes:
    """The first DER value of ``blob`` (without the zero padding after it)."""
    if blob[1] < 0x80:
        return blob[: 2 + blob[1]]
    size = blob[1] & 0x7F
    return blob[: 2 + size + int.from_bytes(blob[2 : 2 + size], "big")]


def pdfsig(pdf: bytes, tmp_path: Path, *options: str) -> str:
    path = tmp_path / "signed-check.pdf"
    path.write_bytes(pdf)
    done = run("pdfsig", *options, path)
    return done.stdout + done.stderr


@pytest.fixture(scope="module")
def document() -> CertificateDocument:
    return make_document()


@pytest.fixture(scope="module")
def rendered(document: CertificateDocument) -> bytes:
    return render_certificate_pdf(document)


@pytest.fixture(scope="module")
def pki_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("pki") / "pki"
    create_dev_ca(folder, organization="Organisme de certification de démonstration")
    return folder


@pytest.fixture(scope="module")
def identity(pki_dir: Path) -> PdfSigningIdentity:
    return load_signing_identity(pki_dir)


@pytest.fixture(scope="module")
def signed(rendered: bytes, identity: PdfSigningIdentity) -> bytes:
    return sign_pdf(rendered, identity, reason="Certificat de conformité MA-CTTH-2026-000001")


def append_incremental_update(pdf: bytes) -> bytes:
    """What an editing tool does: change the title in a new revision appended to the file."""
    writer = IncrementalPdfFileWriter(io.BytesIO(pdf), strict=False)
    info = writer.trailer["/Info"].get_object()
    info[NameObject("/Title")] = TextStringObject("Certificat modifié")
    writer.update_container(info)
    out = io.BytesIO()
    # pyhanko's writer.write is not annotated; its type as called here:
    write: Callable[[BinaryIO], None] = writer.write
    write(out)
    return out.getvalue()


# --- the page -----------------------------------------------------------------------------------


def test_text_reads_back_in_both_languages_with_every_certificate_fact(
    rendered: bytes, tmp_path: Path
) -> None:
    raw = pdf_text(rendered, tmp_path)
    text = BIDI_MARKS.sub("", raw)

    assert TITLE_FR in text
    assert TITLE_AR in text, "Arabic title not extracted in logical order"
    assert not PRESENTATION_FORMS.findall(raw), "Arabic extracted as presentation forms"
    for fact in (
        "MA-CTTH-2026-000001",
        "édition 0",
        "Organisme de certification de démonstration",
        "هيئة الإشهاد التجريبية",
        "ISO/IEC 17065 — accréditation de démonstration",
        "Atlas Protective Wear SARL",
        "أطلس للملابس الواقية",
        "001234567000089",
        "Sidi Bernoussi",
        "Respirator FFP2 NR",
        "AT-200",
        "FFP2-NM-EN-149 (version 1)",
        "NM EN 149:2001+A1:2009",
        "Filtering half mask against particles, class FFP2 NR",
        "bande de garde",
        PAYLOAD["test_report_digest"],
        "2026-11-29",
        "2029-11-28",
        "المركز التقني للنسيج والألبسة",
        VERIFY_URL,
        FOOTER_FR,
        FOOTER_AR,
    ):
        assert fact in text, f"{fact!r} missing from the page text"
    for label_fr, label_ar in (
        ("Titulaire du certificat", "حامل الشهادة"),
        ("Produit certifié", "المنتج المشهود له"),
        ("Référentiel de certification", "مخطط الإشهاد"),
        ("Portée de la certification", "نطاق الإشهاد"),
        ("Règle de décision", "قاعدة اتخاذ القرار"),
        ("Date de délivrance", "تاريخ الإصدار"),
        ("Valable jusqu'au", "صالحة إلى غاية"),
    ):
        assert label_fr in text and label_ar in text


def test_fits_one_a4_portrait_page_with_metadata(rendered: bytes, tmp_path: Path) -> None:
    path = tmp_path / "meta.pdf"
    path.write_bytes(rendered)
    info = run("pdfinfo", path).stdout
    assert re.search(r"^Pages:\s+1$", info, re.M)
    assert re.search(r"^Page size:\s+595\.\d+ x 841\.\d+ pts \(A4\)", info, re.M)
    assert re.search(r"^Subject:\s+MA-CTTH-2026-000001$", info, re.M)
    assert re.search(r"^Title:\s+Certificat de conformité MA-CTTH-2026-000001", info, re.M)


def test_qr_code_on_page_one_encodes_the_verification_url(rendered: bytes, tmp_path: Path) -> None:
    png = page_png(rendered, tmp_path)
    preview = os.environ.get("MUTABAQA_PDF_PREVIEW")
    if preview:
        shutil.copyfile(png, preview)
    assert qr_codes(png) == [VERIFY_URL]


def test_verify_url_is_the_public_base_url_and_number() -> None:
    assert (
        certificate_verify_url("https://mutabaqa.example.ma/", "MA-CTTH-2026-000001") == VERIFY_URL
    )


def test_rendering_is_repeatable(document: CertificateDocument, rendered: bytes) -> None:
    """A retried activity must store the same bytes (same object, same digest)."""
    assert render_certificate_pdf(document) == rendered


def test_long_content_flows_to_a_second_page_and_keeps_a_readable_qr_code(
    tmp_path: Path,
) -> None:
    scope = " ".join(f"Variante AT-2{i:02d} (taille {i})," for i in range(80)) + " fin de portée."
    holder = {k: v for k, v in PAYLOAD["holder"].items() if k != "name_ar"}
    doc = make_document(
        payload={**PAYLOAD, "scope": scope, "holder": holder},
        product_name_ar=None,
        scheme_title_ar=None,
        testing_centre=None,
    )
    pdf = render_certificate_pdf(doc)
    pages = page_count(pdf, tmp_path)
    assert pages == 2
    assert scope in " ".join(pdf_text(pdf, tmp_path).split())
    assert qr_codes(page_png(pdf, tmp_path, page=pages)) == [VERIFY_URL]


def test_a_payload_without_the_signed_fields_is_refused() -> None:
    with pytest.raises(ValueError, match="kid"):
        make_document(payload={k: v for k, v in PAYLOAD.items() if k != "kid"})


# --- the attached signed payload ------------------------------------------------------------------


def test_signed_payload_round_trips_through_the_attachment(rendered: bytes, signed: bytes) -> None:
    expected = {"certificate": PAYLOAD, "signature": SIGNATURE, "key_id": PAYLOAD["kid"]}
    assert extract_signed_payload(rendered) == expected
    assert extract_signed_payload(signed) == expected


def test_attachment_is_named_for_readers(rendered: bytes, tmp_path: Path) -> None:
    path = tmp_path / "att.pdf"
    path.write_bytes(rendered)
    listing = run("pdfdetach", "-list", path).stdout
    assert ATTACHMENT_NAME in listing


def test_no_payload_in_other_files() -> None:
    plain = FPDF()
    plain.add_page()
    assert extract_signed_payload(bytes(plain.output())) is None
    assert extract_signed_payload(b"not a pdf at all") is None


# --- PAdES --------------------------------------------------------------------------------------


def test_signature_verifies_against_the_deployment_ca_only(
    signed: bytes, pki_dir: Path, tmp_path: Path
) -> None:
    assert verify_pades(signed, load_trust_roots(pki_dir))
    other = create_dev_ca(tmp_path / "other-ca")
    assert not verify_pades(signed, load_trust_roots(other.folder))
    assert not verify_pades(signed, [])
    assert not verify_pades(b"%PDF-1.4 nonsense", load_trust_roots(pki_dir))


def test_unsigned_pdf_does_not_verify(rendered: bytes, pki_dir: Path) -> None:
    check = check_pades(rendered, load_trust_roots(pki_dir))
    assert not check.signed and not check.ok


def test_pdfsig_sees_one_valid_ecdsa_p256_signature_over_the_whole_file(
    signed: bytes, tmp_path: Path
) -> None:
    report = pdfsig(signed, tmp_path, "-nocert")
    assert report.count("Signature #") == 1
    assert "Signature Field Name: MutabaqaSignature" in report
    assert "Signature Type: ETSI.CAdES.detached" in report  # PAdES baseline
    assert "Signing Hash Algorithm: SHA-256" in report
    assert "Total document signed" in report
    assert "Signature Validation: Signature is Valid." in report

    dump_dir = tmp_path / "dump"
    dump_dir.mkdir()
    (dump_dir / "c.pdf").write_bytes(signed)
    run("pdfsig", "-nocert", "-dump", "c.pdf", cwd=dump_dir)
    der = der_value((dump_dir / "c.pdf.sig0").read_bytes())  # poppler pads /Contents
    signer_info = cms.ContentInfo.load(der)["content"]["signer_infos"][0]
    assert signer_info["signature_algorithm"].signature_algo == "ecdsa"
    certificates = pkcs7.load_der_pkcs7_certificates(der)
    curves = {c.public_key().curve.name for c in certificates}  # type: ignore[union-attr]
    assert curves == {"secp256r1"}


def test_pdf_reader_trusting_the_ca_shows_it_signed_and_trusted(
    signed: bytes, pki_dir: Path, tmp_path: Path
) -> None:
    """poppler's pdfsig with an NSS database that trusts the deployment's CA (as a reader
    configured by the user would): needs ``certutil`` (Debian ``libnss3-tools``)."""
    if shutil.which("certutil") is None:
        pytest.fail("certutil (Debian libnss3-tools) is not installed: .ci/run installs it")
    trusting = tmp_path / "nss-trusting"
    other = tmp_path / "nss-other"
    for db, ca in ((trusting, pki_dir), (other, create_dev_ca(tmp_path / "other").folder)):
        db.mkdir()
        assert run("certutil", "-N", "-d", f"sql:{db}", "--empty-password").returncode == 0
        trust = ("-n", "ca", "-t", "C,C,C", "-i", ca / "ca-cert.pem")
        added = run("certutil", "-A", "-d", f"sql:{db}", *trust)
        assert added.returncode == 0, added.stderr
    report = pdfsig(signed, tmp_path, "-nssdir", f"sql:{trusting}")
    assert "Signature Validation: Signature is Valid." in report
    assert "Certificate Validation: Certificate is Trusted." in report
    assert "Total document signed" in report
    untrusted = pdfsig(signed, tmp_path, "-nssdir", f"sql:{other}")
    assert "Certificate is Trusted." not in untrusted


def test_a_change_appended_after_signing_is_detected(
    signed: bytes, pki_dir: Path, tmp_path: Path
) -> None:
    changed = append_incremental_update(signed)
    roots = load_trust_roots(pki_dir)
    check = check_pades(changed, roots)
    assert check.signed and check.intact and check.trusted and not check.covers_whole_file
    assert not verify_pades(changed, roots)
    report = pdfsig(changed, tmp_path, "-nocert")
    assert "Not total document signed" in report
    assert "Total document signed" not in report.replace("Not total document signed", "")
    # The payload attachment is still there: the change is in the PDF, not in the JSON.
    assert extract_signed_payload(changed) is not None


def test_a_byte_changed_inside_the_signed_range_breaks_the_signature(
    signed: bytes, pki_dir: Path, tmp_path: Path
) -> None:
    at = signed.index(b"Atlas Protective Wear SARL")
    forged = signed[:at] + b"Atlas Protective Wear SARX" + signed[at + 26 :]
    assert not verify_pades(forged, load_trust_roots(pki_dir))
    assert "Signature Validation: Digest Mismatch." in pdfsig(forged, tmp_path, "-nocert")


# --- the development CA --------------------------------------------------------------------------


def test_dev_ca_files_keys_and_extensions(pki_dir: Path, identity: PdfSigningIdentity) -> None:
    for name in (CA_KEY_FILE, SIGNING_KEY_FILE):
        assert stat.S_IMODE((pki_dir / name).stat().st_mode) == 0o600
    (ca,) = identity.trust_roots
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert ca.extensions.get_extension_for_class(x509.KeyUsage).value.key_cert_sign

    cert = identity.certificate
    cert.verify_directly_issued_by(ca)
    assert isinstance(cert.public_key(), ec.EllipticCurvePublicKey)
    assert cert.public_key().curve.name == "secp256r1"  # type: ignore[union-attr]
    assert not cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    assert usage.digital_signature and usage.content_commitment and not usage.key_cert_sign
    ekus = set(cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value)
    assert x509.ObjectIdentifier("1.3.6.1.5.5.7.3.36") in ekus  # document signing
    assert ExtendedKeyUsageOID.EMAIL_PROTECTION in ekus  # NSS's signer usage


def test_dev_ca_never_overwrites(pki_dir: Path) -> None:
    before = {p.name: p.read_bytes() for p in pki_dir.iterdir()}
    with pytest.raises(FileExistsError):
        create_dev_ca(pki_dir)
    assert {p.name: p.read_bytes() for p in pki_dir.iterdir()} == before


def test_signing_identity_refuses_mismatched_or_wrong_keys(pki_dir: Path, tmp_path: Path) -> None:
    cert_pem = (pki_dir / "signing-cert.pem").read_bytes()
    chain_pem = (pki_dir / "ca-cert.pem").read_bytes()

    def pem(key: ec.EllipticCurvePrivateKey) -> bytes:
        return key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )

    with pytest.raises(SigningIdentityError, match="does not match"):
        PdfSigningIdentity.from_pem(
            cert_pem, pem(ec.generate_private_key(ec.SECP256R1())), chain_pem
        )
    with pytest.raises(SigningIdentityError, match="P-256"):
        PdfSigningIdentity.from_pem(
            cert_pem, pem(ec.generate_private_key(ec.SECP384R1())), chain_pem
        )
    with pytest.raises(SigningIdentityError, match="mutabaqa ca init"):
        load_signing_identity(tmp_path / "empty")
