"""Online features from a Feast feature server (`feast serve`), over HTTP.

Feast runs out of process, in its own virtual environment (it pins pandas and
prometheus-client below the versions mloop runs): mloop never imports feast. A request that
sends entity keys instead of features (`{"entity": {"customer_id": 42}}` on /predict,
`{"entities": [...]}` on /predict/batch) is turned into the ordinary features body here, with
`POST /get-online-features` shared by the requests that arrive together (or one per chunk for
batch scoring), before the usual validation against the model's signature.

Errors: an entity Feast has no row for is a 404 naming it; a lookup Feast refuses (unknown
feature, wrong key name or value type) a 422 with Feast's message; Feast unreachable or past
MLOOP_FEAST_TIMEOUT_SECONDS a 503 naming its URL. Never a 500.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import httpx
import orjson
import pandas as pd

from mloop.errors import (
    ConfigError,
    MloopError,
    NotFoundError,
    ServiceUnavailableError,
    ValidationError,
)
from mloop.settings import Settings

PATH = "/get-online-features"
NOT_FOUND = "NOT_FOUND"
ONE, MANY = "entity", "entities"  # the request fields that carry entity keys


@dataclass(frozen=True)
class FeastSource:
    """Where online features come from: the server URL and what to read for each entity."""

    url: str
    features: tuple[str, ...] = ()  # "view:feature"
    feature_service: str | None = None
    timeout: float = 2.0

    @classmethod
    def from_settings(cls, settings: Settings) -> FeastSource:
        """The source configured by MLOOP_FEAST_URL / _FEATURES / _FEATURE_SERVICE."""
        if not settings.feast_url:
            raise ConfigError(
                "no Feast feature server is configured",
                hint="set MLOOP_FEAST_URL (e.g. http://127.0.0.1:6566 for `feast serve`)",
            )
        source = cls(
            url=settings.feast_url.rstrip("/"),
            features=tuple(settings.feast_features),
            feature_service=settings.feast_feature_service or None,
            timeout=settings.feast_timeout_seconds,
        )
        if not source.features and source.feature_service is None:
            raise ConfigError(
                "Feast is configured without features to read",
                hint="set MLOOP_FEAST_FEATURES=view:feature,... or MLOOP_FEAST_FEATURE_SERVICE",
            )
        return source

    def request(self, entities: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        """The `/get-online-features` body for these entity rows (columns by join key)."""
        keys = list(entities[0])
        body: dict[str, Any] = {"entities": {k: [row[k] for row in entities] for k in keys}}
        if self.feature_service is not None:
            body["feature_service"] = self.feature_service
        else:
            body["features"] = list(self.features)
        return body


def check_entities(entities: Any, what: str) -> list[dict[str, Any]]:
    """Entity rows as sent: non-empty objects of scalar keys, all with the same key names."""
    if not isinstance(entities, list) or not entities:
        raise ValidationError(f"{what} must be a non-empty array of entity-key objects")
    first = entities[0]
    for index, row in enumerate(entities):
        if not isinstance(row, dict) or not row:
            raise ValidationError(
                f'{what} row {index} must be an object of entity keys, e.g. {{"customer_id": 42}}'
            )
        if row.keys() != first.keys():
            raise ValidationError(
                f"{what} row {index} has keys {sorted(row)}, row 0 has {sorted(first)}: "
                "every row must send the same entity keys"
            )
        for key, value in row.items():
            if value is None or isinstance(value, dict | list):
                raise ValidationError(
                    f"{what} row {index}: entity key {key!r} must be a string or a number"
                )
    return entities


def rows_from_response(
    document: Any, entities: Sequence[Mapping[str, Any]], keep: frozenset[str] | None = None
) -> list[dict[str, Any]]:
    """Feature rows (by feature name) from a `/get-online-features` answer.

    An entity none of whose features Feast has is a NotFoundError naming it. `keep` (the
    model's columns; None: all) drops the columns the model does not take (the join keys,
    as a rule).
    """
    try:
        names = document["metadata"]["feature_names"]
        results = document["results"]
    except (KeyError, TypeError):
        raise ServiceUnavailableError(
            "the Feast feature server sent an unexpected answer"
        ) from None
    join_keys = set(entities[0])
    pairs = list(zip(names, results, strict=True))
    columns = [(name, result) for name, result in pairs if keep is None or name in keep]
    features = [result for name, result in pairs if name not in join_keys]
    missing = [
        i
        for i in range(len(entities))
        if features and all(r["statuses"][i] == NOT_FOUND for r in features)
    ]
    if missing:
        shown = ", ".join(_show(entities[i]) for i in missing[:5])
        more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
        raise NotFoundError(
            f"entity {shown}{more} not found in the Feast online store",
            hint="check the key, or run `mloop features materialize` to load recent features",
        )
    return [{name: result["values"][i] for name, result in columns} for i in range(len(entities))]


@dataclass
class _Lookup:
    """One request's entity rows, waiting for their share of a combined lookup."""

    entities: Sequence[Mapping[str, Any]]
    keep: frozenset[str] | None
    answer: asyncio.Future


@dataclass
class _Lane:
    """A loop's lookups not yet sent, and how many combined lookups are in flight."""

    waiting: list[_Lookup]
    in_flight: int = 0


class FeastClient:
    """Async lookups for the server's event loop (one pooled httpx client per loop).

    Concurrent lookups are combined: at most MAX_IN_FLIGHT calls per loop are in flight, and
    the requests that arrive meanwhile share the next call (up to MAX_ROWS entity rows), so
    64 concurrent requests cost Feast a few large lookups instead of 64 small ones (Feast's
    Python feature server spends most of its time per call, not per row). Each request still
    gets its own answer: its own 404 for an entity Feast lacks, its own 422 when Feast refuses
    its keys (a refused combined call is split in halves until the refused request is found).
    """

    MAX_IN_FLIGHT = 4
    MAX_ROWS = 512

    def __init__(self, source: FeastSource) -> None:
        self.source = source
        self.calls = 0  # HTTP calls made (tests, and the benchmark's calls per request)
        self._clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, httpx.AsyncClient]
        self._clients = weakref.WeakKeyDictionary()
        self._lanes: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Lane]
        self._lanes = weakref.WeakKeyDictionary()

    def _client(self) -> httpx.AsyncClient:
        loop = asyncio.get_running_loop()
        client = self._clients.get(loop)
        if client is None:
            limits = httpx.Limits(max_connections=256, max_keepalive_connections=64)
            client = httpx.AsyncClient(timeout=self.source.timeout, limits=limits)
            self._clients[loop] = client
        return client

    async def online(
        self, entities: Sequence[Mapping[str, Any]], keep: frozenset[str] | None = None
    ) -> list[dict[str, Any]]:
        """One feature row per entity row, in order (sharing a call with concurrent lookups)."""
        loop = asyncio.get_running_loop()
        lane = self._lanes.get(loop)
        if lane is None:
            lane = self._lanes[loop] = _Lane([])
        lookup = _Lookup(entities, keep, loop.create_future())
        lane.waiting.append(lookup)
        if lane.in_flight < self.MAX_IN_FLIGHT:
            lane.in_flight += 1
            loop.create_task(self._drain(lane))
        return await lookup.answer

    async def _drain(self, lane: _Lane) -> None:
        """Send what waits, in combined calls, until nothing does."""
        try:
            while lane.waiting:
                batch = _take(lane.waiting, self.MAX_ROWS)
                try:
                    await self._send(batch)
                except Exception as exc:  # a bug here must not leave requests waiting
                    for lookup in batch:
                        _settle(lookup, error=_unreachable(self.source.url, exc))
        finally:
            lane.in_flight -= 1

    async def _send(self, batch: list[_Lookup]) -> None:
        entities = [row for lookup in batch for row in lookup.entities]
        try:
            document = await self._call(entities)
        except ValidationError as exc:  # Feast refused some keys: halve until it is found whose
            if len(batch) == 1:
                _settle(batch[0], error=exc)
            else:
                half = len(batch) // 2
                await self._send(batch[:half])
                await self._send(batch[half:])
            return
        except MloopError as exc:
            for lookup in batch:
                _settle(lookup, error=exc)
            return
        start = 0
        for lookup in batch:
            count = len(lookup.entities)
            try:
                part = _slice(document, start, count)
                _settle(lookup, rows_from_response(part, lookup.entities, lookup.keep))
            except MloopError as exc:
                _settle(lookup, error=exc)
            start += count

    async def _call(self, entities: Sequence[Mapping[str, Any]]) -> Any:
        """One lookup; sent again once when a kept-alive connection turns out closed (Feast
        closes its connection after refusing a lookup, and the pool may hand out that one)."""
        content = orjson.dumps(self.source.request(entities))
        for attempt in (1, 2):
            self.calls += 1
            try:
                answer = await self._client().post(
                    self.source.url + PATH,
                    content=content,
                    headers={"content-type": "application/json"},
                )
                break
            except (httpx.ReadError, httpx.RemoteProtocolError) as exc:
                if attempt == 2:
                    raise _unreachable(self.source.url, exc) from None
            except httpx.HTTPError as exc:
                raise _unreachable(self.source.url, exc) from None
        return _document(answer)


def _take(waiting: list[_Lookup], max_rows: int) -> list[_Lookup]:
    """The oldest waiting lookups that share the first one's key names, up to `max_rows`."""
    keys = waiting[0].entities[0].keys()
    batch, rows, rest = [], 0, []
    for lookup in waiting:
        fits = not batch or rows + len(lookup.entities) <= max_rows
        if fits and lookup.entities[0].keys() == keys:
            batch.append(lookup)
            rows += len(lookup.entities)
        else:
            rest.append(lookup)
    waiting[:] = rest
    return batch


def _slice(document: Any, start: int, count: int) -> Any:
    """The part of a combined `/get-online-features` answer for rows start..start+count."""
    try:
        results = [
            {**r, "values": r["values"][start : start + count],
             "statuses": r["statuses"][start : start + count]}
            for r in document["results"]
        ]  # fmt: skip
        return {"metadata": document["metadata"], "results": results}
    except (KeyError, TypeError):
        raise ServiceUnavailableError(
            "the Feast feature server sent an unexpected answer"
        ) from None


def _settle(lookup: _Lookup, rows: Any = None, *, error: Exception | None = None) -> None:
    """Answer a waiting lookup (unless its request went away meanwhile)."""
    if lookup.answer.done():
        return
    if error is not None:
        lookup.answer.set_exception(error)
    else:
        lookup.answer.set_result(rows)


def online_frame(
    source: FeastSource, entity_df: pd.DataFrame, chunk_rows: int = 1000
) -> pd.DataFrame:
    """Online features for every row of `entity_df` (its columns are the join keys), in
    order: one HTTP call per `chunk_rows` rows. For batch scoring an entity-key file."""
    if entity_df.empty:
        raise ValidationError("the entity file has no rows")
    parts = []
    with httpx.Client(timeout=source.timeout) as client:
        for start in range(0, len(entity_df), chunk_rows):
            chunk = entity_df.iloc[start : start + chunk_rows]
            entities = [{k: _plain(v) for k, v in row.items()} for row in chunk.to_dict("records")]
            try:
                answer = client.post(
                    source.url + PATH,
                    content=orjson.dumps(source.request(entities)),
                    headers={"content-type": "application/json"},
                )
            except httpx.HTTPError as exc:
                raise _unreachable(source.url, exc) from None
            parts.append(pd.DataFrame(rows_from_response(_document(answer), entities)))
    frame = pd.concat(parts, ignore_index=True)
    return frame[[*entity_df.columns, *[c for c in frame.columns if c not in entity_df]]]


_CLIENTS: dict[tuple[str, tuple[str, ...], str | None, float], FeastClient] = {}


def client_for(settings: Settings) -> FeastClient:
    """The FeastClient of these settings (one per configuration per process)."""
    source = FeastSource.from_settings(settings)
    key = (source.url, source.features, source.feature_service, source.timeout)
    found = _CLIENTS.get(key)
    if found is None:
        found = _CLIENTS[key] = FeastClient(source)
    return found


def has_entities(body: bytes) -> bool:
    """Whether a request body may carry entity keys (a cheap test before parsing)."""
    return b'"entit' in body


async def features_body(
    settings: Settings,
    body: bytes,
    *,
    many: bool,
    columns: Sequence[str] | None,
    max_rows: int,
) -> bytes:
    """An entity-key body turned into the features body the predict routes parse.

    `{"entity": {...}}` -> `{"features": {...}}`, `{"entities": [...]}` -> `{"instances":
    [...]}`, other top-level fields (a deployment's sticky key) kept. Any other body is
    returned as it came.
    """
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError:
        return body  # the routes' own parser names the error
    field = MANY if many else ONE
    if not isinstance(document, dict) or field not in document:
        return body
    for other in ("features", "instances"):
        if other in document:
            raise ValidationError(f"send either {field!r} or {other!r}, not both")
    if many:
        entities = check_entities(document.pop(field), f"'{MANY}'")
        if len(entities) > max_rows:
            raise ValidationError(
                f"'{MANY}' has {len(entities)} rows, over the limit of {max_rows}",
                hint="split the batch or raise MLOOP_MAX_BATCH_ROWS",
            )
    else:
        one = document.pop(field)
        if not isinstance(one, dict):
            raise ValidationError(
                f"'{ONE}' must be an object of entity keys, e.g. {{\"customer_id\": 42}}"
            )
        entities = check_entities([one], f"'{ONE}'")
    keep = frozenset(columns) if columns is not None else None
    rows = await client_for(settings).online(entities, keep)
    document["instances" if many else "features"] = rows if many else rows[0]
    return orjson.dumps(document)


def _document(answer: httpx.Response) -> Any:
    if answer.status_code >= 400:
        detail = answer.text.strip().strip('"').replace('\\"', '"')
        raise ValidationError(
            f"the Feast feature server refused the lookup (HTTP {answer.status_code}): "
            f"{detail[:300]}"
        )
    try:
        return answer.json()
    except ValueError:
        raise ServiceUnavailableError(
            "the Feast feature server sent an unexpected answer"
        ) from None


def _unreachable(url: str, exc: Exception) -> ServiceUnavailableError:
    return ServiceUnavailableError(
        f"the Feast feature server at {url} is unreachable: {type(exc).__name__} {exc}".rstrip(),
        hint="start it with `feast serve` in the Feast repo, or check MLOOP_FEAST_URL",
    )


def _show(entity: Mapping[str, Any]) -> str:
    return "{" + ", ".join(f"{k}={v!r}" for k, v in entity.items()) + "}"


def _plain(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else value
