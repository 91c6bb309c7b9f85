"""Reference data: centres and schemes with their real limits, loaded idempotently."""

from __future__ import annotations

from decimal import Decimal

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from models.reference import Aggregation, DecisionRule, Scheme, TechnicalCentre
from models.reference import TestItem as PlanItem
from mutabaqa.seed import load_reference_data, seed

CENTRE_SECTORS = {
    "CETIEV": ["automotive"],
    "CERIMME": ["metal", "mechanical", "electrical", "electronic", "medical_devices"],
    "CTPC": ["plastics", "rubber"],
    "CTTH": ["textile", "ppe_textile"],
    "CETEMCO": ["construction"],
    "CTIBA": ["wood", "furniture"],
    "CMTC": ["leather"],
    "CETIA": ["food"],
    "CERIC": ["cereals"],
}


def _items(session: Session, code: str) -> dict[str, PlanItem]:
    scheme = session.exec(select(Scheme).where(Scheme.code == code)).one()
    rows = session.exec(
        select(PlanItem)
        .where(PlanItem.scheme_id == scheme.id)
        .order_by(sa.asc(col(PlanItem.position)))
    ).all()
    return {item.code: item for item in rows}


def test_centres_are_seeded_with_routing_sectors_and_both_names(engine: Engine) -> None:
    with Session(engine) as session:
        centres = {c.code: c for c in session.exec(select(TechnicalCentre)).all()}
    assert {code: c.sectors for code, c in centres.items()} == CENTRE_SECTORS
    for centre in centres.values():
        assert centre.name and centre.name_ar
        assert any("\u0600" <= ch <= "\u06ff" for ch in centre.name_ar)


def test_ffp2_plan_has_the_standard_limits(engine: Engine) -> None:
    with Session(engine) as session:
        scheme = session.exec(select(Scheme).where(Scheme.code == "FFP2-NM-EN-149")).one()
        items = _items(session, "FFP2-NM-EN-149")
    assert scheme.decision_rule is DecisionRule.GUARDED
    assert scheme.sector == "ppe_textile"
    assert scheme.standards == [
        {"code": "NM EN 149", "title": scheme.standards[0]["title"], "edition": "2001+A1:2009"}
    ]
    assert set(scheme.required_documents) == {
        "technical_file",
        "declaration_of_conformity",
        "user_instructions",
        "product_photos",
    }
    assert list(items) == [
        "PEN-NACL",
        "PEN-PARAFFIN",
        "TIL-IND",
        "TIL-MEAN",
        "RES-IN-30",
        "RES-IN-95",
        "RES-EX-160",
        "CO2",
        "FLAME",
    ]
    assert items["PEN-NACL"].upper_limit == Decimal("6")
    assert items["RES-IN-30"].upper_limit == Decimal("0.7")
    assert items["TIL-IND"].aggregation is Aggregation.COUNT_WITHIN
    assert items["TIL-IND"].min_count == 46
    assert items["TIL-MEAN"].min_count == 8
    assert items["TIL-MEAN"].upper_limit == Decimal("8")
    assert all(item.upper_inclusive and item.lower_limit is None for item in items.values())
    assert all(item.mandatory for item in items.values())


def test_medical_mask_plan_keeps_exclusive_and_lower_limits(engine: Engine) -> None:
    with Session(engine) as session:
        items = _items(session, "MEDMASK-IIR-NM-EN-14683")
    assert items["DP"].upper_limit == Decimal("60")
    assert items["DP"].upper_inclusive is False
    assert items["BFE"].lower_limit == Decimal("98")
    assert items["BFE"].lower_inclusive is True
    assert str(items["SPLASH"].lower_limit) == "16.0"  # written as the lab writes it
    assert items["BIOBURDEN"].upper_limit == Decimal("30")


def _counts(engine: Engine) -> tuple[int, ...]:
    """Rows of the seeded reference data (other tests may add schemes of their own)."""
    seeded = ("FFP2-NM-EN-149", "MEDMASK-IIR-NM-EN-14683")
    with engine.connect() as conn:
        return (
            conn.execute(sa.text("SELECT count(*) FROM technical_centre")).scalar_one(),
            conn.execute(
                sa.text("SELECT count(*) FROM scheme WHERE code IN :codes").bindparams(
                    sa.bindparam("codes", expanding=True)
                ),
                {"codes": seeded},
            ).scalar_one(),
            conn.execute(
                sa.text(
                    "SELECT count(*) FROM scheme_test_item i JOIN scheme s ON s.id = i.scheme_id "
                    "WHERE s.code IN :codes"
                ).bindparams(sa.bindparam("codes", expanding=True)),
                {"codes": seeded},
            ).scalar_one(),
        )


def test_seeding_again_changes_nothing(engine: Engine) -> None:
    before = _counts(engine)
    report = seed(engine)
    assert not report.changed
    assert report.schemes_diverging == []
    assert _counts(engine) == before == (9, 2, 13)


def test_a_stored_scheme_version_is_never_overwritten(engine: Engine) -> None:
    data = load_reference_data()
    altered = data.schemes[0].model_copy(update={"title": "Changed title"})
    report = seed(engine, data.model_copy(update={"schemes": [altered]}))
    assert report.schemes_diverging == [f"{altered.code} v{altered.version}"]
    with Session(engine) as session:
        stored = session.exec(select(Scheme).where(Scheme.code == altered.code)).one()
    assert stored.title == data.schemes[0].title
