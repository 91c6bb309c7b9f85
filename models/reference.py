"""Reference tables: technical centres and versioned certification schemes with test plans."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any, Self

import sqlalchemy as sa
from pydantic import BaseModel, ConfigDict, model_validator
from sqlmodel import Field, SQLModel

from domain.statuses import Aggregation as Aggregation
from domain.statuses import DecisionRule as DecisionRule
from models.types import SQL_INT_MAX, DecimalText, UTCDateTime, text_enum, utcnow

CODE_PATTERN = r"^[A-Z0-9][A-Z0-9._-]{0,63}$"
KEY_PATTERN = r"^[a-z][a-z0-9_]{0,63}$"


class StandardRef(BaseModel):
    model_config = ConfigDict(extra="forbid")

    code: str = Field(min_length=1, max_length=64)
    title: str = Field(min_length=1, max_length=300)
    edition: str = Field(min_length=1, max_length=64)


class ItemTitles(BaseModel):
    model_config = ConfigDict(extra="forbid")

    fr: str = Field(min_length=1, max_length=300)
    ar: str = Field(min_length=1, max_length=300)
    en: str | None = Field(default=None, max_length=300)


# --- technical centres -------------------------------------------------------------------


class TechnicalCentreBase(SQLModel):
    code: str = Field(primary_key=True, max_length=32, schema_extra={"pattern": CODE_PATTERN})
    name: str = Field(min_length=1, max_length=300)
    name_ar: str = Field(min_length=1, max_length=300)
    sectors: list[str] = Field(default_factory=list, sa_type=sa.JSON)


class TechnicalCentreCreate(TechnicalCentreBase):
    model_config = ConfigDict(extra="forbid")  # type: ignore[assignment]


class TechnicalCentrePublic(TechnicalCentreBase):
    pass


class TechnicalCentre(TechnicalCentreBase, table=True):
    __tablename__ = "technical_centre"

    active: bool = True
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


# --- schemes and test items ----------------------------------------------------------------


class TestItemBase(SQLModel):
    code: str = Field(max_length=64, schema_extra={"pattern": CODE_PATTERN})
    title: str = Field(min_length=1, max_length=300)
    method: str = Field(min_length=1, max_length=200)
    unit: str = Field(min_length=1, max_length=32)
    lower_limit: Decimal | None = Field(default=None, sa_type=DecimalText)
    lower_inclusive: bool = True
    upper_limit: Decimal | None = Field(default=None, sa_type=DecimalText)
    upper_inclusive: bool = True
    mandatory: bool = True
    aggregation: Aggregation = Field(default=Aggregation.SINGLE, sa_type=text_enum(Aggregation))
    min_count: int | None = Field(default=None, ge=1, le=SQL_INT_MAX)


class TestItemCreate(TestItemBase):
    model_config = ConfigDict(extra="forbid")  # type: ignore[assignment]

    titles: ItemTitles

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.lower_limit is None and self.upper_limit is None:
            raise ValueError(f"test item {self.code}: give a lower or an upper limit")
        if (
            self.lower_limit is not None
            and self.upper_limit is not None
            and self.lower_limit > self.upper_limit
        ):
            raise ValueError(f"test item {self.code}: lower limit above upper limit")
        if (self.aggregation is Aggregation.COUNT_WITHIN) != (self.min_count is not None):
            raise ValueError(
                f"test item {self.code}: min_count is required with count_within, and only there"
            )
        return self


class TestItemPublic(TestItemBase):
    titles: ItemTitles


class TestItem(TestItemBase, table=True):
    __tablename__ = "scheme_test_item"
    __table_args__ = (sa.UniqueConstraint("scheme_id", "code"),)

    id: int | None = Field(default=None, primary_key=True)
    scheme_id: int = Field(foreign_key="scheme.id", index=True)
    position: int
    titles: dict[str, Any] = Field(default_factory=dict, sa_type=sa.JSON)


class SchemeBase(SQLModel):
    code: str = Field(max_length=64, schema_extra={"pattern": CODE_PATTERN}, index=True)
    version: int = Field(default=1, ge=1, le=SQL_INT_MAX)
    title: str = Field(min_length=1, max_length=300)
    title_ar: str | None = Field(default=None, max_length=300)
    title_en: str | None = Field(default=None, max_length=300)
    sector: str = Field(max_length=64, schema_extra={"pattern": KEY_PATTERN})
    decision_rule: DecisionRule = Field(sa_type=text_enum(DecisionRule))
    validity_months: int = Field(ge=1, le=240)
    surveillance_months: int = Field(ge=1, le=120)


class SchemeCreate(SchemeBase):
    model_config = ConfigDict(extra="forbid")  # type: ignore[assignment]

    standards: list[StandardRef] = Field(min_length=1)
    required_documents: list[str] = Field(default_factory=list)
    test_items: list[TestItemCreate] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique_codes(self) -> Self:
        codes = [item.code for item in self.test_items]
        if len(codes) != len(set(codes)):
            raise ValueError("test item codes must be unique within a scheme")
        return self


class SchemePublic(SchemeBase):
    id: int
    standards: list[StandardRef]
    required_documents: list[str]
    test_items: list[TestItemPublic]


class Scheme(SchemeBase, table=True):
    __tablename__ = "scheme"
    __table_args__ = (sa.UniqueConstraint("code", "version"),)

    id: int | None = Field(default=None, primary_key=True)
    standards: list[dict[str, Any]] = Field(default_factory=list, sa_type=sa.JSON)
    required_documents: list[str] = Field(default_factory=list, sa_type=sa.JSON)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
