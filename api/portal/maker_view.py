"""What the request page shows a manufacturer besides the first slice: one upload slot per
required document, and how long each stage of the request took.

Pure functions of what ``request_view`` and ``timeline_of`` answered (nothing is read
again), so the request page stays one read of the record.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

from models.request_api import FilePublic, TimelineItem


@dataclass(frozen=True)
class DocumentSlot:
    """A document the scheme requires: its kind and the upload that currently stands for
    it (``None`` until one is uploaded; a newer upload supersedes the older)."""

    kind: str
    current: FilePublic | None
    #: The refusal of the last attempt to upload this kind (a problem kind), if any.
    error: str | None = None


def document_slots(
    required: Sequence[str], documents: Sequence[FilePublic], error: tuple[str, str] | None
) -> list[DocumentSlot]:
    """One slot per required kind, in the scheme's order; ``error`` is ``(kind, problem
    kind)`` of a refused upload, shown next to that kind's field."""
    current = {f.kind: f for f in documents if f.kind and f.superseded_at is None}
    return [
        DocumentSlot(
            kind=kind,
            current=current.get(kind),
            error=error[1] if error is not None and error[0] == kind else None,
        )
        for kind in required
    ]


def stage_seconds(items: Sequence[TimelineItem]) -> list[float | None]:
    """For each timeline item, how long the status it entered lasted: the seconds until the
    next status change; ``None`` for an item that changed no status (an upload in a draft
    is recorded ``draft → draft``), and for the current stage (it has not ended)."""
    changes = [
        index
        for index, item in enumerate(items)
        if item.to_status is not None and item.to_status != item.from_status
    ]
    seconds: list[float | None] = [None] * len(items)
    for this, following in itertools.pairwise(changes):
        seconds[this] = (items[following].at - items[this].at).total_seconds()
    return seconds
