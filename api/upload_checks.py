"""What an uploaded file is and what it is called: media types from the leading bytes,
and filenames made safe to show and to put in an object key.
"""

from __future__ import annotations

import codecs
import unicodedata
from collections.abc import Callable, Mapping
from types import MappingProxyType

from python_multipart.multipart import parse_options_header

from api.problems import Problem

MAX_FILENAME_CHARS = 150
OCTET_STREAM = "application/octet-stream"
DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"

#: Does a file's head (its first 8 KiB, or all of it if shorter) fit a media type?
Sniffer = Callable[[bytes], bool]

_PDF = b"%PDF-"
_PNG = b"\x89PNG\r\n\x1a\n"
_JPEG = b"\xff\xd8\xff"
_ZIP = b"PK\x03\x04"
_BINARY_SIGNATURES = (_PDF, _PNG, _JPEG, _ZIP, b"PK\x05\x06", b"GIF8", b"\x7fELF", b"MZ")


# --- What a file is ------------------------------------------------------------------------


def _signature(prefix: bytes) -> Sniffer:
    def matches(head: bytes) -> bool:
        return head.startswith(prefix)

    return matches


def looks_like_text(head: bytes) -> bool:
    """UTF-8 (a character cut at the end of the head is fine), no NUL, no binary signature."""
    if b"\x00" in head or head.startswith(_BINARY_SIGNATURES):
        return False
    try:
        codecs.getincrementaldecoder("utf-8")().decode(head, final=False)
    except UnicodeDecodeError:
        return False
    return True


DEFAULT_ALLOWED_TYPES: Mapping[str, Sniffer] = MappingProxyType(
    {
        "application/pdf": _signature(_PDF),
        "image/png": _signature(_PNG),
        "image/jpeg": _signature(_JPEG),
        DOCX: _signature(_ZIP),
        XLSX: _signature(_ZIP),
        "text/csv": looks_like_text,
        "text/plain": looks_like_text,
    }
)

#: Tells apart types whose heads look alike when the client did not declare one.
_EXTENSION_TYPES = {
    ".pdf": "application/pdf",
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".docx": DOCX,
    ".xlsx": XLSX,
    ".csv": "text/csv",
    ".txt": "text/plain",
}
_ZIP_MARKERS = {DOCX: b"word/", XLSX: b"xl/"}


def _unsupported(detail: str, allowed: Mapping[str, Sniffer]) -> Problem:
    return Problem(
        415,
        "unsupported-media-type",
        "File type not allowed",
        detail,
        allowed_types=sorted(allowed),
    )


def resolve_media_type(
    declared: str, head: bytes, filename: str, allowed: Mapping[str, Sniffer]
) -> str:
    """The file's media type, from the declared type checked against the leading bytes.

    A declared ``application/octet-stream`` (or none) is replaced by the type the bytes
    show, if it is allowed and unambiguous. Raises ``Problem(415)`` otherwise.
    """
    declared = parse_options_header(declared)[0].decode("latin-1")
    if declared in ("", OCTET_STREAM):
        candidates = [media for media, fits in allowed.items() if fits(head)]
        by_extension = _EXTENSION_TYPES.get(_extension(filename))
        if by_extension in candidates:
            return str(by_extension)
        if len(candidates) > 1:
            marked = [media for media in candidates if _ZIP_MARKERS.get(media, b"\0") in head]
            if len(marked) == 1:
                return marked[0]
            if all(media.startswith("text/") for media in candidates):
                return "text/plain" if "text/plain" in candidates else candidates[0]
        if len(candidates) == 1:
            return candidates[0]
        raise _unsupported(
            "the file's content is not one of the allowed types"
            if not candidates
            else f"the file's content could be any of {', '.join(candidates)}; declare its type",
            allowed,
        )
    if declared not in allowed:
        raise _unsupported(f"files of type {declared} are not accepted", allowed)
    if not allowed[declared](head):
        raise _unsupported(f"the file is declared as {declared} but its content is not", allowed)
    return declared


# --- Filenames -----------------------------------------------------------------------------

_KEPT_PUNCTUATION = frozenset(" ._-()[]+,@&'")
_JOINERS = frozenset("\u200c\u200d")  # shape Arabic-script words; not spoofing controls


def _extension(name: str) -> str:
    stem, dot, ext = name.rpartition(".")
    if not dot or not stem or len(ext) > 16 or not ext.isalnum():
        return ""
    return "." + ext.lower()


def sanitize_filename(raw: str, *, default: str = "file") -> str:
    """A filename safe to show and to put in an object key, readable in any script.

    Drops any path, control and bidirectional-format characters; normalises to NFC; keeps
    letters, marks and digits of every script and a few punctuation marks; replaces the
    rest with ``_``; never empty, never starting with a dot, at most 150 characters.
    """
    name = unicodedata.normalize("NFC", raw).replace("\\", "/").rsplit("/", 1)[-1]
    out: list[str] = []
    for char in name:
        category = unicodedata.category(char)
        if char in _JOINERS or category[0] in "LMN" or char in _KEPT_PUNCTUATION:
            out.append(char)
        elif category in ("Cc", "Cf", "Zl", "Zp"):
            continue
        elif category == "Zs":
            out.append(" ")
        elif "\u0600" <= char <= "\u06ff":  # Arabic punctuation (comma, question mark, ...)
            out.append(char)
        else:
            out.append("_")
    # Removing characters can leave marks next to a new base: normalise again.
    name = unicodedata.normalize("NFC", " ".join("".join(out).split()))
    while "__" in name:
        name = name.replace("__", "_")
    name = name.lstrip(". ").rstrip(". ")
    if len(name) > MAX_FILENAME_CHARS:
        ext = _extension(name)
        ext = name[-len(ext) :] if ext else ""
        name = name[: MAX_FILENAME_CHARS - len(ext)].rstrip(". ") + ext
    return name or default
