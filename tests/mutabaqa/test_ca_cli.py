"""``mutabaqa ca init``: a development CA and PDF signing certificate, as an operator makes one."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

from activities.certificate_pdf import sign_pdf, verify_pades
from activities.pki import load_signing_identity, load_trust_roots

FILES = {"ca-cert.pem", "ca-key.pem", "signing-cert.pem", "signing-key.pem"}


def run_ca(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("MUTABAQA_")}
    return subprocess.run(
        [sys.executable, "-m", "mutabaqa", "ca", "init", *args],
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_creates_the_identity_in_the_data_dir_once(tmp_path: Path) -> None:
    env = {"MUTABAQA_DATA_DIR": str(tmp_path / "data")}
    first = run_ca(env=env)
    assert first.returncode == 0, first.stderr
    folder = tmp_path / "data" / "pki"
    assert {p.name for p in folder.iterdir()} == FILES
    assert stat.S_IMODE((folder / "signing-key.pem").stat().st_mode) == 0o600
    assert stat.S_IMODE((folder / "ca-key.pem").stat().st_mode) == 0o600
    assert "ca-cert.pem" in first.stdout

    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    again = run_ca(env=env)
    assert again.returncode == 1
    assert "refusing to overwrite" in again.stderr
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before

    # The identity it made signs PDFs that verify against the CA it made.
    identity = load_signing_identity(folder)
    signed = sign_pdf(_tiny_pdf(), identity)
    assert verify_pades(signed, load_trust_roots(folder))


def test_dir_option_and_setting_choose_the_folder(tmp_path: Path) -> None:
    by_option = run_ca("--dir", str(tmp_path / "opt"), env={})
    assert by_option.returncode == 0, by_option.stderr
    assert {p.name for p in (tmp_path / "opt").iterdir()} == FILES

    by_setting = run_ca(env={"MUTABAQA_PDF_SIGNING_DIR": str(tmp_path / "set")})
    assert by_setting.returncode == 0, by_setting.stderr
    assert {p.name for p in (tmp_path / "set").iterdir()} == FILES


def _tiny_pdf() -> bytes:
    from fpdf import FPDF

    pdf = FPDF()
    pdf.add_page()
    pdf.set_font("Helvetica", size=12)
    pdf.cell(text="test")
    return bytes(pdf.output())
