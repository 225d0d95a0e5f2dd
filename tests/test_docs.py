"""docs/errors.md is generated from the code where it lists facts of the
code, and cannot drift from it."""

from __future__ import annotations

from pathlib import Path

from smtpcore.errors import reason_table
from smtpcore.tls import ANTIVIRUS_ISSUER_PATTERNS

DOC = (Path(__file__).resolve().parents[1] / "docs" / "errors.md").read_text()


def generated(marker: str) -> str:
    header = f"<!-- generated: {marker} -->\n"
    start = DOC.index(header) + len(header)
    return DOC[start : DOC.index("<!-- end generated -->", start)]


def test_reason_table_is_the_codes_own() -> None:
    assert generated("smtpcore.errors.reason_table()") == reason_table()


def test_antivirus_products_are_the_codes_own() -> None:
    products = ", ".join(product for product, _ in ANTIVIRUS_ISSUER_PATTERNS)
    assert generated("smtpcore.tls.ANTIVIRUS_ISSUER_PATTERNS").strip() == products
