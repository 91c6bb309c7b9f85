"""Products of the caller's manufacturer organisation."""

from __future__ import annotations

from fastapi import APIRouter
from sqlalchemy.exc import IntegrityError
from sqlmodel import select

from api.deps import ManufacturerActor, OwnProduct, SessionDep
from api.pagination import Page, PageParamsDep, paginate
from api.problems import Problem
from models.accounts import Product, ProductCreate, ProductPublic

router = APIRouter(prefix="/products", tags=["products"])


def _gtin_taken(gtin: str) -> Problem:
    """A GTIN names one product: a second registration (by any organisation) is refused,
    without saying whose product holds it."""
    return Problem(
        409,
        "gtin-taken",
        "Conflict",
        f"the GTIN {gtin} is already registered for a product; a GTIN names one product "
        "(ask the certification body if it is yours)",
    )


@router.post(
    "",
    status_code=201,
    response_model=ProductPublic,
    responses={
        409: {
            "description": "The caller's account belongs to no organisation, or the GTIN "
            "is already registered for a product."
        }
    },
)
def create_product(
    actor: ManufacturerActor, body: ProductCreate, session: SessionDep
) -> ProductPublic:
    """Register a product for the caller's organisation; its optional ``gtin`` is checked
    (check digit), stored in its 14-digit form, and refused (409 ``gtin-taken``) when any
    product already has it."""
    if actor.organization_id is None:
        raise Problem(
            409,
            "no-organization",
            "Conflict",
            "your account belongs to no organisation; ask an admin to attach it to one",
        )
    if (
        body.gtin is not None
        and session.exec(select(Product.id).where(Product.gtin == body.gtin)).first()
    ):
        raise _gtin_taken(body.gtin)
    product = Product.model_validate(body.model_dump() | {"organization_id": actor.organization_id})
    session.add(product)
    try:
        session.flush()
    except IntegrityError:  # the same GTIN registered meanwhile
        raise _gtin_taken(body.gtin or "") from None
    public = ProductPublic.model_validate(product)
    session.commit()
    return public


@router.get("", response_model=Page[ProductPublic])
def list_products(
    actor: ManufacturerActor, session: SessionDep, page: PageParamsDep
) -> Page[ProductPublic]:
    """The caller's organisation's products, newest first."""
    statement = select(Product).where(Product.organization_id == actor.organization_id)
    return paginate(
        session,
        statement,
        page,
        ProductPublic.model_validate,
        order=(Product.created_at, Product.id),
    )


@router.get("/{product_id}", response_model=ProductPublic)
def get_product(product: OwnProduct) -> ProductPublic:
    """One of the caller's organisation's products (another organisation's is 404)."""
    return ProductPublic.model_validate(product)
