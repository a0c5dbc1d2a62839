"""The content types ingest takes, and the media type of a Content-Type header (JSON bodies are UTF-8)."""

from __future__ import annotations

from eventstore.errors import InvalidInput, UnsupportedContentType
from eventstore.models import JSON_CONTENT_TYPE

CLOUDEVENT_CONTENT_TYPE = "application/cloudevents+json"
CLOUDEVENT_BATCH_CONTENT_TYPE = "application/cloudevents-batch+json"
ENVELOPE_CONTENT_TYPE = "application/vnd.marain.workflows.hosted.messageenvelope"

MESSAGE_CONTENT_TYPES = (JSON_CONTENT_TYPE, ENVELOPE_CONTENT_TYPE)
OUTCOME_CONTENT_TYPES = (JSON_CONTENT_TYPE, CLOUDEVENT_CONTENT_TYPE, CLOUDEVENT_BATCH_CONTENT_TYPE)

# `is_json_content_type` as an ECMA pattern (no inline flags there, hence the letter classes).
JSON_MEDIA_TYPE_PATTERN = (
    r"^\s*(?:[^;\x00]*\+[Jj][Ss][Oo][Nn]|[Aa][Pp][Pp][Ll][Ii][Cc][Aa][Tt][Ii][Oo][Nn]/[Jj][Ss][Oo][Nn]"
    r"|[Tt][Ee][Xx][Tt]/[Jj][Ss][Oo][Nn])\s*(?:;[^\x00]*)?$"
)


def media_type(content_type: str | None) -> str:
    """The media type of a Content-Type value, lowered; a charset other than UTF-8 is refused."""
    if not content_type:
        return ""
    media, *params = (part.strip() for part in content_type.split(";"))
    for param in params:
        key, _, value = param.partition("=")
        if key.strip().lower() == "charset" and value.strip().strip('"').lower() not in ("utf-8", "utf8"):
            raise InvalidInput(
                f"JSON bodies are UTF-8; charset {value.strip()!r} is not accepted", field="Content-Type"
            )
    return media.lower()


def is_json_media_type(content_type: str | None) -> bool:
    """application/json or any */*+json (UTF-8: another charset is refused)."""
    media = media_type(content_type)
    return media == JSON_CONTENT_TYPE or media.endswith("+json")


def check_message_content_type(content_type: str | None) -> None:
    """Messages are JSON: application/json, Marain's envelope type, or any */*+json."""
    if not is_json_media_type(content_type) and media_type(content_type) != ENVELOPE_CONTENT_TYPE:
        raise UnsupportedContentType(content_type, MESSAGE_CONTENT_TYPES)


def outcome_media_type(content_type: str | None) -> str:
    """The media type of an outcome body: one of `OUTCOME_CONTENT_TYPES`, else `UnsupportedContentType`."""
    media = media_type(content_type)
    if media not in OUTCOME_CONTENT_TYPES:
        raise UnsupportedContentType(content_type, OUTCOME_CONTENT_TYPES)
    return media
