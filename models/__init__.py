"""Data shapes: SQLModel tables (the record and read model) and pydantic payloads.

Importing this package registers every table on ``SQLModel.metadata`` (Alembic relies on it).
"""

from models import (  # noqa: F401  (registers the tables)
    accounts,
    audit,
    credentials,
    lab,
    logins,
    outbox,
    requests,
    webhooks,
)
from models.reference import (
    Aggregation,
    DecisionRule,
    Scheme,
    SchemeCreate,
    SchemePublic,
    StandardRef,
    TechnicalCentre,
    TechnicalCentreCreate,
    TechnicalCentrePublic,
    TestItem,
    TestItemCreate,
    TestItemPublic,
)
from models.system import CanaryInput, CanaryResult, HealthReport, StackCheckResult

__all__ = [
    "Aggregation",
    "CanaryInput",
    "CanaryResult",
    "DecisionRule",
    "HealthReport",
    "Scheme",
    "SchemeCreate",
    "SchemePublic",
    "StackCheckResult",
    "StandardRef",
    "TechnicalCentre",
    "TechnicalCentreCreate",
    "TechnicalCentrePublic",
    "TestItem",
    "TestItemCreate",
    "TestItemPublic",
]
