"""Reference data (technical centres, schemes) loaded idempotently from ``reference.json``.

Centres are upserted by code (the file is the source of their names). A scheme version is
immutable once stored — requests keep the version they started with — so an existing
(code, version) is left alone and reported if the file now describes it differently;
publish a change as a new version.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

from pydantic import BaseModel, ConfigDict
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from models.reference import (
    Scheme,
    SchemeCreate,
    TechnicalCentre,
    TechnicalCentreCreate,
    TestItem,
)
from mutabaqa.db import session_scope


class ReferenceData(BaseModel):
    model_config = ConfigDict(extra="forbid")

    centres: list[TechnicalCentreCreate]
    schemes: list[SchemeCreate]


@dataclass
class SeedReport:
    centres_created: list[str] = field(default_factory=list)
    centres_updated: list[str] = field(default_factory=list)
    schemes_created: list[str] = field(default_factory=list)
    schemes_diverging: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.centres_created or self.centres_updated or self.schemes_created)


def load_reference_data() -> ReferenceData:
    text = resources.files("mutabaqa").joinpath("reference.json").read_text(encoding="utf-8")
    return ReferenceData.model_validate(json.loads(text))


def scheme_from_create(data: SchemeCreate) -> tuple[Scheme, list[TestItem]]:
    scheme = Scheme.model_validate(
        data.model_dump(exclude={"test_items", "standards"})
        | {"standards": [s.model_dump() for s in data.standards]}
    )
    items = [
        TestItem.model_validate(
            item.model_dump(exclude={"titles"})
            | {
                "titles": item.titles.model_dump(exclude_none=True),
                "position": position,
                "scheme_id": 0,
            }
        )
        for position, item in enumerate(data.test_items)
    ]
    return scheme, items


def scheme_as_create(session: Session, scheme: Scheme) -> SchemeCreate:
    items = session.exec(
        select(TestItem).where(TestItem.scheme_id == scheme.id).order_by(col(TestItem.position))
    ).all()
    payload: dict[str, Any] = scheme.model_dump(exclude={"id", "created_at"})
    payload["test_items"] = [
        item.model_dump(exclude={"id", "scheme_id", "position"}) for item in items
    ]
    return SchemeCreate.model_validate(payload)


def add_scheme(session: Session, data: SchemeCreate) -> Scheme:
    scheme, items = scheme_from_create(data)
    session.add(scheme)
    session.flush()
    assert scheme.id is not None
    for item in items:
        item.scheme_id = scheme.id
        session.add(item)
    return scheme


def seed(engine: Engine, data: ReferenceData | None = None) -> SeedReport:
    data = data or load_reference_data()
    report = SeedReport()
    with session_scope(engine) as session:
        for centre in data.centres:
            existing = session.get(TechnicalCentre, centre.code)
            if existing is None:
                session.add(TechnicalCentre.model_validate(centre.model_dump()))
                report.centres_created.append(centre.code)
            elif (
                existing.model_dump(include=set(TechnicalCentreCreate.model_fields))
                != centre.model_dump()
            ):
                for key, value in centre.model_dump().items():
                    setattr(existing, key, value)
                session.add(existing)
                report.centres_updated.append(centre.code)
        for scheme_data in data.schemes:
            label = f"{scheme_data.code} v{scheme_data.version}"
            stored = session.exec(
                select(Scheme).where(
                    Scheme.code == scheme_data.code, Scheme.version == scheme_data.version
                )
            ).first()
            if stored is None:
                add_scheme(session, scheme_data)
                report.schemes_created.append(label)
            elif scheme_as_create(session, stored) != scheme_data:
                report.schemes_diverging.append(label)
    return report
