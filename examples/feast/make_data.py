"""Write data/customer_stats.parquet (feature history) and data/labels.parquet (entity rows).

Each customer has three snapshots of its stats, a month apart; each label row asks for the
features as they were at its own time (Feast's point-in-time join).
"""

from pathlib import Path

import numpy as np
import pandas as pd


def main(folder: Path = Path(__file__).parent / "data", customers: int = 200) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(3)
    times = pd.to_datetime(["2024-01-01", "2024-02-01", "2024-03-01"], utc=True)
    stats = pd.concat(
        pd.DataFrame(
            {
                "customer_id": np.arange(1, customers + 1, dtype=np.int64),
                "event_timestamp": t,
                "tenure": rng.uniform(0, 72, customers),
                "charges": rng.uniform(10, 120, customers),
                "support_calls": rng.integers(0, 8, customers).astype(np.int64),
                "plan": rng.choice(["basic", "plus", "pro"], customers),
            }
        )
        for t in times
    )
    stats.to_parquet(folder / "customer_stats.parquet", index=False)
    labels = pd.DataFrame(
        {
            "customer_id": np.arange(1, customers + 1, dtype=np.int64),
            "event_timestamp": pd.Timestamp("2024-03-15", tz="UTC"),
            "churned": rng.integers(0, 2, customers),
        }
    )
    labels.to_parquet(folder / "labels.parquet", index=False)


if __name__ == "__main__":
    main()
