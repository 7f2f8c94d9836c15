"""Sample tables for a new project, generated (never downloaded) and deterministic.

Classification: the synthetic churn customers of `mloop.data.churn`. Regression: house prices
from a known linear rule with noise, so a forest learns them well and raising `area_sqm`
raises the price.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from mloop.data.churn import generate_churn

CLASSIFICATION, REGRESSION = "classification", "regression"
TASKS = (CLASSIFICATION, REGRESSION)
NEIGHBOURHOODS = ("centre", "suburb", "riverside", "outskirts")
_PREMIUM = {"centre": 60_000.0, "suburb": 20_000.0, "riverside": 45_000.0, "outskirts": 0.0}


def sample_table(task: str, rows: int, seed: int) -> tuple[pd.DataFrame, str, list[str]]:
    """The sample table of `task`, its target column and its id columns."""
    if task == REGRESSION:
        return house_prices(rows, seed), "price", ["house_id"]
    return generate_churn(rows, seed=seed), "churn", ["customer_id"]


def house_prices(rows: int, seed: int = 42) -> pd.DataFrame:
    """`rows` houses: area, rooms, age, neighbourhood, and a price in EUR."""
    rng = np.random.default_rng(seed)
    area = rng.uniform(35, 220, rows).round(1)
    rooms = np.clip((area / 30 + rng.normal(0, 0.8, rows)).round(), 1, 9).astype(int)
    age = rng.integers(0, 90, rows)
    hood = np.asarray(NEIGHBOURHOODS, dtype=object)[rng.integers(0, len(NEIGHBOURHOODS), rows)]
    premium = np.array([_PREMIUM[h] for h in hood])
    price = 40_000 + 2_600 * area + 6_000 * rooms - 450 * age + premium
    price = (price + rng.normal(0, 15_000, rows)).round(-2)
    ids = [f"H{i:05d}" for i in range(1, rows + 1)]
    return pd.DataFrame(
        {
            "house_id": ids,
            "area_sqm": area,
            "rooms": rooms,
            "age_years": age,
            "neighbourhood": hood,
            "price": price,
        }
    )
