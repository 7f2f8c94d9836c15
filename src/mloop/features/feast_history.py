"""Point-in-time correct training frames from Feast's offline store, out of process.

`historical_frame` runs a short script with the Feast venv's python: it calls
`FeatureStore(repo).get_historical_features(entity_df, features)` and writes Parquet, which
this process reads. Feast joins each entity row at time t with the latest feature values at or
before t (within the view's ttl), so no future value leaks into a training row. The entity
file holds the join keys, an `event_timestamp` column and any other columns (the label), which
come back unchanged, every row in its original order (features null where Feast has none).
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from mloop.errors import ConfigError, ValidationError
from mloop.features import feast_env

TIMESTAMP = "event_timestamp"
ROW = "__mloop_row"

SCRIPT = f"""
import json, sys
import pandas as pd
from feast import FeatureStore

args = json.loads(sys.argv[1])
path = args["entities"]
if path.endswith(".csv"):
    entity_df = pd.read_csv(path)
else:
    entity_df = pd.read_parquet(path)
entity_df["{TIMESTAMP}"] = pd.to_datetime(entity_df["{TIMESTAMP}"], utc=True)
entity_df["{ROW}"] = range(len(entity_df))
store = FeatureStore(repo_path=args["repo"])
if args.get("feature_service"):
    features = store.get_feature_service(args["feature_service"])
else:
    features = args["features"]
frame = store.get_historical_features(entity_df=entity_df, features=features).to_df()
# Feast drops the entity rows it has no feature values for: put them back (features null),
# so a training frame never loses label rows silently. Rows come back in their own order.
added = [c for c in frame.columns if c not in entity_df.columns]
frame = entity_df.merge(frame[["{ROW}", *added]], on="{ROW}", how="left")
frame = frame.sort_values("{ROW}").drop(columns=["{ROW}"]).reset_index(drop=True)
frame.to_parquet(args["out"], index=False)
"""


def feast_section(source: Any) -> Mapping[str, Any]:
    """The `feast` section of a contract (its `.feast`) or of a config mapping."""
    section = getattr(source, "feast", None)
    if section is None and isinstance(source, Mapping):
        section = source.get("feast", source)
    if not section or "repo" not in section:
        raise ConfigError(
            "no Feast source is declared",
            hint="add `feast: {repo: PATH, features: [view:feature, ...]}` to features.yaml",
        )
    if not section.get("features") and not section.get("feature_service"):
        raise ConfigError("the feast section names neither features nor a feature_service")
    return section


def historical_frame(
    source: Any, entity_df_path: Path | str, *, venv: Path | None = None
) -> pd.DataFrame:
    """The training frame: each entity row joined point-in-time with its Feast features.

    `source`: a FeatureContract (or mapping) with `feast: {repo, features | feature_service}`.
    `entity_df_path`: Parquet or CSV with the join keys and `event_timestamp`.
    """
    section = feast_section(source)
    path = Path(entity_df_path)
    if not path.exists():
        raise ValidationError(f"entity file {path} does not exist")
    columns = pd.read_csv(path, nrows=0) if path.suffix == ".csv" else pd.read_parquet(path)
    if TIMESTAMP not in columns.columns:
        raise ValidationError(
            f"entity file {path} has no {TIMESTAMP!r} column: Feast joins each row "
            "with the features as they were at that time"
        )
    venv = venv or Path(".venv-tools/feast")
    python = feast_env.require_env(venv)
    with tempfile.TemporaryDirectory(prefix="mloop-feast-") as folder:
        out = Path(folder) / "history.parquet"
        args = {
            "repo": str(Path(section["repo"]).resolve()),
            "entities": str(path.resolve()),
            "features": list(section.get("features") or []),
            "feature_service": section.get("feature_service"),
            "out": str(out),
        }
        feast_env._run(
            [str(python), "-c", SCRIPT, json.dumps(args)],
            "reading historical features from Feast",
            timeout=1800,
        )
        return pd.read_parquet(out)
