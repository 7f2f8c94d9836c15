"""Synthetic customer-churn data: deterministic, vectorised, with an optional drifted variant.

The label follows a logistic model of the usual churn drivers (month-to-month contracts, short
tenure, support calls, high charges, fiber) so a forest learns it well; `drift=True` shifts the
inputs the way a changing customer base would, for monitoring tests.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from mloop.errors import ValidationError

CONTRACT_TYPES = ("month-to-month", "one-year", "two-year")
PAYMENT_METHODS = ("electronic_check", "mailed_check", "bank_transfer", "credit_card")
DRIFT_PAYMENT_METHOD = "digital_wallet"
INTERNET_SERVICES = ("dsl", "fiber", "none")
REGIONS = ("north", "south", "east", "west", "central")

COLUMNS = (
    "customer_id",
    "signup_date",
    "age",
    "tenure_months",
    "monthly_charges",
    "total_charges",
    "num_support_calls",
    "data_usage_gb",
    "contract_type",
    "payment_method",
    "internet_service",
    "region",
    "churn",
)

_REFERENCE_DATE = np.datetime64("2025-01-01", "D")
_FIRST_SIGNUP = np.datetime64("2019-01-01", "D")
_INTERCEPT = -2.35  # calibrated so about 25% of the undrifted rows churn


def _choice(rng: np.random.Generator, values: tuple[str, ...], probs: list[float], n: int):
    """Draw categorical values as an object array (vectorised)."""
    return np.asarray(values, dtype=object)[rng.choice(len(values), size=n, p=probs)]


def generate_churn(rows: int, seed: int = 42, drift: bool = False) -> pd.DataFrame:
    """A synthetic churn table of `rows` customers; the same seed gives an identical frame."""
    if isinstance(rows, bool) or not isinstance(rows, int) or rows < 1:
        raise ValidationError(f"rows must be a positive integer, got {rows!r}")
    rng = np.random.default_rng(seed)
    n = rows

    width = max(6, len(str(n)))
    ids = "C" + pd.Series(np.arange(1, n + 1)).astype(str).str.zfill(width)

    span = int((_REFERENCE_DATE - _FIRST_SIGNUP).astype(int))
    days_before = rng.integers(0, span, size=n)
    if drift:  # a wave of recent signups
        days_before = (days_before * rng.uniform(0.4, 1.0, size=n)).astype(np.int64)
    signup = _REFERENCE_DATE - days_before.astype("timedelta64[D]")
    tenure = (days_before // 30).astype(np.int64)

    age = np.clip(np.round(rng.normal(45, 14, size=n)), 18, 90)
    age[rng.random(n) < 0.03] = np.nan

    contract_p = [0.70, 0.18, 0.12] if drift else [0.55, 0.25, 0.20]
    contract = _choice(rng, CONTRACT_TYPES, contract_p, n)
    if drift:
        payment = _choice(
            rng, (*PAYMENT_METHODS, DRIFT_PAYMENT_METHOD), [0.30, 0.15, 0.15, 0.20, 0.20], n
        )
    else:
        payment = _choice(rng, PAYMENT_METHODS, [0.35, 0.20, 0.22, 0.23], n)
    internet = _choice(rng, INTERNET_SERVICES, [0.35, 0.45, 0.20], n)
    region = _choice(rng, REGIONS, [0.22, 0.2, 0.2, 0.2, 0.18], n)

    base = np.select([internet == "fiber", internet == "dsl"], [70.0, 45.0], 22.0)
    monthly = np.clip(base + rng.normal(0, 12, size=n), 18.0, None)
    if drift:
        monthly *= 1.3
    monthly = np.round(monthly, 2)
    total = np.round(monthly * np.maximum(tenure, 1) * rng.uniform(0.95, 1.05, size=n), 2)
    total[(tenure == 0) | (rng.random(n) < 0.01)] = np.nan

    calls_rate = 1.2 + 0.5 * (internet == "fiber") + (1.0 if drift else 0.0)
    calls = rng.poisson(calls_rate).astype(np.int64)

    usage = rng.lognormal(np.log(np.where(internet == "none", 0.5, 18.0)), 0.6)
    outliers = rng.random(n) < 0.005
    usage[outliers] *= rng.uniform(8, 20, size=int(outliers.sum()))
    usage = np.round(usage, 2)

    logit = (
        _INTERCEPT
        + np.select([contract == "month-to-month", contract == "two-year"], [1.6, -2.0], -0.4)
        - 0.06 * (tenure - 30)
        + 0.6 * (calls - 1.5)
        + 0.03 * (monthly - 55)
        + 0.7 * (internet == "fiber")
        + 0.35 * (payment == "electronic_check")
    )
    churn = (rng.random(n) < 1.0 / (1.0 + np.exp(-logit))).astype(np.int64)

    internet_out = internet.copy()
    internet_out[rng.random(n) < 0.02] = None

    return pd.DataFrame(
        {
            "customer_id": ids,
            "signup_date": np.datetime_as_string(signup, unit="D"),
            "age": age,
            "tenure_months": tenure,
            "monthly_charges": monthly,
            "total_charges": total,
            "num_support_calls": calls,
            "data_usage_gb": usage,
            "contract_type": contract,
            "payment_method": payment,
            "internet_service": internet_out,
            "region": region,
            "churn": churn,
        },
        columns=list(COLUMNS),
    )
