"""Search attributes that make requests and certificates findable in the Temporal UI and CLI."""

from temporalio.common import SearchAttributeKey

STATUS = SearchAttributeKey.for_keyword("MutabaqaStatus")
MANUFACTURER = SearchAttributeKey.for_keyword("MutabaqaManufacturer")
CENTRE = SearchAttributeKey.for_keyword("MutabaqaCentre")
SCHEME = SearchAttributeKey.for_keyword("MutabaqaScheme")
KIND = SearchAttributeKey.for_keyword("MutabaqaKind")

ALL = (STATUS, MANUFACTURER, CENTRE, SCHEME, KIND)
