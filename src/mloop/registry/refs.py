"""Parse the model references users type: `NAME@ALIAS`, `NAME/VERSION`, `models:/...`."""

from __future__ import annotations

import re
from dataclasses import dataclass

from mloop.errors import ValidationError

# Seed stage names map onto MLflow aliases (registry stages are deprecated since MLflow 2.9).
STAGE_ALIASES = {"staging": "staging", "production": "production"}

_NAME = r"[A-Za-z0-9][A-Za-z0-9_.\- ]*"
_PATTERN = re.compile(rf"^(?P<name>{_NAME}?)(?:@(?P<alias>[A-Za-z0-9_\-]+)|/(?P<version>\d+))$")


@dataclass(frozen=True)
class ModelRef:
    """A registered model and either an alias or a version number (exactly one)."""

    name: str
    alias: str | None = None
    version: str | None = None

    @property
    def uri(self) -> str:
        """The `models:/` URI MLflow loads."""
        return (
            f"models:/{self.name}@{self.alias}"
            if self.alias
            else f"models:/{self.name}/{self.version}"
        )

    def __str__(self) -> str:
        return f"{self.name}@{self.alias}" if self.alias else f"{self.name}/{self.version}"


def parse_model_ref(text: str) -> ModelRef:
    """Parse `NAME@ALIAS`, `NAME/VERSION` or `models:/NAME@ALIAS|/VERSION`.

    Stage names are accepted as aliases in any case: `churn@Production` means `churn@production`.
    """
    raw = text.strip()
    body = raw[len("models:/") :] if raw.startswith("models:/") else raw
    match = _PATTERN.match(body)
    if not match:
        raise ValidationError(
            f"invalid model reference {text!r}",
            hint="use NAME@ALIAS (churn@production), NAME/VERSION (churn/3) or models:/churn/3",
        )
    alias = match["alias"]
    if alias is not None:
        alias = STAGE_ALIASES.get(alias.lower(), alias)
    return ModelRef(name=match["name"], alias=alias, version=match["version"])
