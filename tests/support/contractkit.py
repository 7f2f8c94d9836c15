"""A features.yaml for modelkit's churn columns, and logging it with a registered version."""

from __future__ import annotations

from pathlib import Path

from mloop.features.contract import CONTRACT_ARTIFACT, FeatureContract, FeatureRule

# tenure, support_calls and plan refuse values outside; charges accepts and counts them.
CONTRACT = FeatureContract(
    features=(
        FeatureRule("tenure", "number", nullable=True, min=0, max=72),
        FeatureRule("charges", "number", nullable=True, min=10, max=120, policy="count"),
        FeatureRule("support_calls", "integer", min=0, max=20),
        FeatureRule("plan", "category", allowed=("basic", "plus", "pro")),
        FeatureRule("signup_date", "date"),
    ),
    policy="reject",
)


def log_contract(name: str, folder: Path, contract: FeatureContract = CONTRACT) -> None:
    """Put `contract` as features.yaml at the top of version 1's run artifacts (MLflow's
    tracking URI already configured, as `modelkit.train_and_register` leaves it)."""
    import mlflow

    client = mlflow.MlflowClient()
    run_id = client.get_model_version(name, "1").run_id
    path = Path(folder) / CONTRACT_ARTIFACT
    contract.dump(path)
    client.log_artifact(run_id, str(path))
