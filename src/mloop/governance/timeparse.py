"""`since` values (`--since`, `?since=`): an ISO 8601 date or time, or an age `30m`, `12h`, `7d`."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from mloop.errors import ValidationError

_RELATIVE = re.compile(r"^(\d+)\s*([smhd])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


def parse_since(text: str, name: str = "since") -> str:
    """The audit trail's timestamp format (UTC, fixed width) for `text`.

    `name` is how the caller spells the input in errors: `--since` (CLI), `since` (REST).
    """
    value = text.strip()
    match = _RELATIVE.match(value)
    if match:
        moment = datetime.now(UTC) - timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})
    else:
        try:
            moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise ValidationError(
                f"invalid {name} {text!r}: use an ISO date or time (2026-01-31, "
                "2026-01-31T12:00:00Z) or a relative age (30m, 12h, 7d)"
            ) from None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
