"""Query parameters given once: a scalar one repeated is refused, not silently read as the last.

FastAPI reads `?model=a&model=b` as `model=b`; the caller meant something and would never
learn that half of it was dropped. An app-wide dependency (serving.app), so it runs before
the route's own ones: a repeated parameter is refused (nothing is done) before the role check.
"""

from __future__ import annotations

from collections import Counter
from typing import Any, Union, get_args, get_origin

from starlette.requests import Request

from mloop.errors import ValidationError

_MANY = (list, tuple, set, frozenset)


def _takes_many(annotation: Any) -> bool:
    origin = get_origin(annotation)
    if origin in _MANY or annotation in _MANY:
        return True
    if origin is Union or type(annotation).__name__ == "UnionType":
        return any(_takes_many(arg) for arg in get_args(annotation))
    return False


async def single_query_values(request: Request) -> None:
    """Raise ValidationError (422) when a scalar query parameter of the route is repeated."""
    if not request.scope.get("query_string"):
        return
    dependant = getattr(request.scope.get("route"), "dependant", None)
    if dependant is None:
        return
    scalar = {p.alias for p in dependant.query_params if not _takes_many(p.field_info.annotation)}
    counts = Counter(key for key, _ in request.query_params.multi_items() if key in scalar)
    repeated = sorted(key for key, n in counts.items() if n > 1)
    if repeated:
        raise ValidationError(
            f"query parameter {repeated[0]!r} is given {counts[repeated[0]]} times: give it once"
        )
