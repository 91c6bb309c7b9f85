"""The architecture, held by a test: which package may import which, and how big a module
may grow (docs/architecture.md says why).

- ``api/`` never imports ``activities/`` or workflow code: it starts and updates workflows
  by name, reads through ``records/`` and decides with ``domain/``.
- ``workflows/`` never import table modules (``models/`` modules that define tables) nor
  ``records/``: a workflow holds state, activities touch the record.
- ``domain/`` (the pure core) imports only the standard library, pydantic and itself.
- the API process never names the private signing key nor the PDF signing identity: it
  publishes public keys, workers sign.
- no module of the product's packages is over 500 lines.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MAX_LINES = 500
PACKAGES = ("api", "activities", "workflows", "models", "domain", "records", "mutabaqa")


def modules(package: str) -> Iterator[Path]:
    yield from sorted((ROOT / package).rglob("*.py"))


def imported(path: Path) -> Iterator[str]:
    """Every module ``path`` imports, wherever the import statement is."""
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module
            yield from (f"{node.module}.{alias.name}" for alias in node.names)


def table_modules() -> set[str]:
    """``models.*`` modules that define a SQLModel table (``class X(..., table=True)``)."""
    found = set()
    for path in modules("models"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ClassDef) and any(kw.arg == "table" for kw in node.keywords):
                found.add(".".join(path.relative_to(ROOT).with_suffix("").parts))
                break
    return found


def violations(package: str, forbidden: set[str] | tuple[str, ...]) -> list[str]:
    out = []
    for path in modules(package):
        for name in imported(path):
            top = name.split(".")[0]
            if name in forbidden or top in forbidden:
                out.append(f"{path.relative_to(ROOT)} imports {name}")
    return sorted(set(out))


def test_the_api_imports_neither_activities_nor_workflows() -> None:
    assert violations("api", ("activities", "workflows")) == []


def test_workflows_import_no_table_module_and_no_records() -> None:
    assert violations("workflows", table_modules() | {"records"}) == []


def test_the_core_imports_only_the_standard_library_and_pydantic() -> None:
    allowed = set(sys.stdlib_module_names) | {"pydantic", "domain", "__future__"}
    found = [
        f"{path.relative_to(ROOT)} imports {name}"
        for path in modules("domain")
        for name in imported(path)
        if name.split(".")[0] not in allowed
    ]
    assert sorted(set(found)) == []


def test_the_api_process_loads_no_pdf_signing_or_mail_library() -> None:
    code = (
        "import sys\n"
        "from api.app import create_app\n"
        "from mutabaqa.settings import Settings\n"
        "create_app(Settings(database_url='sqlite://'))\n"
        "print(' '.join(sorted(m for m in ('fpdf', 'pyhanko', 'smtplib') if m in sys.modules)))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == ""


#: What only a signing process touches: the private key's path and loaders, the key ring,
#: the PDF signing identity.
PRIVATE_MATERIAL = (
    "signing_key_path",
    "load_private_key",
    "KeyRing",
    "ensure_signing_material",
    "pdf_signing_dir",
    "ensure_pdf_identity",
    "create_key_file",
)


def test_the_api_never_reads_the_private_signing_material() -> None:
    found = [
        f"{path.relative_to(ROOT)} names {name}"
        for path in modules("api")
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        for name in PRIVATE_MATERIAL
        if (isinstance(node, ast.Name) and name in node.id)
        or (isinstance(node, ast.Attribute) and name in node.attr)
        or (isinstance(node, ast.alias) and name in node.name)
    ]
    assert sorted(set(found)) == []


@pytest.mark.parametrize("package", PACKAGES)
def test_no_module_is_over_500_lines(package: str) -> None:
    long = {
        str(path.relative_to(ROOT)): n
        for path in modules(package)
        if (n := len(path.read_text(encoding="utf-8").splitlines())) > MAX_LINES
    }
    assert long == {}
