"""Feast definitions of the churn example: one entity, one Parquet source, one feature view."""

from datetime import timedelta

from feast import Entity, FeatureView, Field, FileSource, ValueType
from feast.types import Float64, Int64, String

customer = Entity(name="customer", join_keys=["customer_id"], value_type=ValueType.INT64)

customer_stats_source = FileSource(
    name="customer_stats_source",
    path="data/customer_stats.parquet",
    timestamp_field="event_timestamp",
)

customer_stats = FeatureView(
    name="customer_stats",
    entities=[customer],
    ttl=timedelta(days=3650),
    schema=[
        Field(name="tenure", dtype=Float64),
        Field(name="charges", dtype=Float64),
        Field(name="support_calls", dtype=Int64),
        Field(name="plan", dtype=String),
    ],
    source=customer_stats_source,
    online=True,
)
