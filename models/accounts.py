"""Organisations (manufacturers) and users with one or more roles."""

from __future__ import annotations

import re
import uuid
from datetime import datetime
from typing import Literal, Self

import sqlalchemy as sa
from pydantic import BaseModel, ConfigDict, field_validator, model_validator
from pydantic import Field as PydanticField
from sqlmodel import Field, SQLModel

from domain.gs1 import normalize_gtin
from domain.logins import PASSWORD_MIN_LENGTH
from domain.permissions import Role
from models.types import UTCDateTime, utcnow

EMAIL_PATTERN = re.compile(r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]{2,}$")
#: Morocco's company identifier (ICE) has 15 digits; other countries: 3-32 characters.
ICE_PATTERN = re.compile(r"^\d{15}$")
PASSWORD_MAX_LENGTH = 256


def new_id() -> str:
    return uuid.uuid4().hex


# --- organisations -------------------------------------------------------------------------


class OrganizationBase(SQLModel):
    name: str = Field(min_length=1, max_length=300)
    name_ar: str | None = Field(default=None, max_length=300)
    registration_id: str = Field(min_length=3, max_length=32)
    address: str = Field(min_length=1, max_length=500)
    country: str = Field(min_length=2, max_length=2, schema_extra={"pattern": r"^[A-Z]{2}$"})


class OrganizationCreate(OrganizationBase):
    model_config = ConfigDict(extra="forbid")  # type: ignore[assignment]

    @model_validator(mode="after")
    def _ice_for_morocco(self) -> Self:
        if self.country == "MA" and not ICE_PATTERN.match(self.registration_id):
            raise ValueError("registration_id: a Moroccan ICE has exactly 15 digits")
        return self


class OrganizationPublic(OrganizationBase):
    id: str
    created_at: datetime


class Organization(OrganizationBase, table=True):
    __tablename__ = "organization"

    id: str = Field(default_factory=new_id, primary_key=True, max_length=32)
    registration_id: str = Field(min_length=3, max_length=32, unique=True)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


# --- users ---------------------------------------------------------------------------------


class UserBase(SQLModel):
    email: str = Field(max_length=254)
    full_name: str = Field(min_length=1, max_length=300)
    organization_id: str | None = Field(default=None, max_length=32)
    centre_code: str | None = Field(default=None, max_length=32)

    @field_validator("email")
    @classmethod
    def _email(cls, value: str) -> str:
        value = value.strip().lower()
        if not EMAIL_PATTERN.match(value):
            raise ValueError("not an e-mail address")
        return value


class UserCreate(UserBase):
    model_config = ConfigDict(extra="forbid")  # type: ignore[assignment]

    password: str = Field(min_length=PASSWORD_MIN_LENGTH, max_length=PASSWORD_MAX_LENGTH)
    roles: list[Role] = Field(min_length=1)


class UserUpdate(SQLModel):
    model_config = ConfigDict(extra="forbid")  # type: ignore[assignment]

    full_name: str | None = Field(default=None, min_length=1, max_length=300)
    roles: list[Role] | None = Field(default=None, min_length=1)
    disabled: bool | None = None
    centre_code: str | None = None
    organization_id: str | None = None
    password: str | None = Field(
        default=None, min_length=PASSWORD_MIN_LENGTH, max_length=PASSWORD_MAX_LENGTH
    )


class UserPublic(UserBase):
    id: str
    roles: list[Role]
    disabled: bool
    created_at: datetime


class User(UserBase, table=True):
    __tablename__ = "app_user"

    id: str = Field(default_factory=new_id, primary_key=True, max_length=32)
    email: str = Field(max_length=254, unique=True)
    organization_id: str | None = Field(
        default=None, foreign_key="organization.id", index=True, max_length=32
    )
    centre_code: str | None = Field(
        default=None, foreign_key="technical_centre.code", index=True, max_length=32
    )
    password_hash: str = Field(max_length=300)
    roles: list[str] = Field(default_factory=list, sa_type=sa.JSON)
    disabled: bool = False
    #: The ``ver`` claim of the tokens that are valid now; a password change, a disablement
    #: or a logout increments it, so every token issued before is refused.
    token_version: int = Field(default=0, sa_column_kwargs={"server_default": "0"})
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class AccessToken(BaseModel):
    """The answer of ``POST /auth/token`` (RFC 6749 section 5.1)."""

    access_token: str
    token_type: Literal["bearer"] = "bearer"
    expires_in: int = PydanticField(description="Seconds until the token expires.")


# --- products ------------------------------------------------------------------------------


class ProductBase(SQLModel):
    name: str = Field(min_length=1, max_length=300)
    name_ar: str | None = Field(default=None, max_length=300)
    brand: str = Field(min_length=1, max_length=200)
    model: str = Field(min_length=1, max_length=200)
    description: str = Field(default="", max_length=5000)
    hs_code: str | None = Field(
        default=None, max_length=10, schema_extra={"pattern": r"^\d{4,10}$"}
    )


class ProductCreate(ProductBase):
    model_config = ConfigDict(extra="forbid")  # type: ignore[assignment]

    gtin: str | None = Field(
        default=None,
        max_length=20,
        description="The product's GTIN (GTIN-8, -12, -13 or -14, with its check digit); "
        "stored in its 14-digit form. One organisation's product per GTIN. Published (GS1 "
        "Digital Link, `/01/{gtin}`) only once an officer confirms it at `accept`.",
    )

    @field_validator("gtin")
    @classmethod
    def _gtin(cls, value: str | None) -> str | None:
        return None if value is None else normalize_gtin(value)


class ProductPublic(ProductBase):
    id: str
    organization_id: str
    created_at: datetime
    gtin: str | None = None
    #: When an officer confirmed the GTIN (at a request's ``accept``); null: unconfirmed.
    gtin_confirmed_at: datetime | None = None


class Product(ProductBase, table=True):
    __tablename__ = "product"

    id: str = Field(default_factory=new_id, primary_key=True, max_length=32)
    organization_id: str = Field(foreign_key="organization.id", index=True, max_length=32)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    #: The GTIN in its 14-digit form (``domain.gs1``); unique across organisations.
    gtin: str | None = Field(default=None, max_length=14, unique=True)
    #: Who confirmed the GTIN and when (a compliance officer, at a request's ``accept``):
    #: only a confirmed GTIN is published.
    gtin_confirmed_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    gtin_confirmed_by: str | None = Field(default=None, foreign_key="app_user.id", max_length=32)
