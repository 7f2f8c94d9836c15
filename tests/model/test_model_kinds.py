"""Every kind of model MLflow serves, mloop serves: `/invocations` answers as MLflow's own
scoring server (what `mlflow models serve` runs) answers the same bodies, and `/predict`,
`/predict/batch` and batch-scoring files give sensible answers.

Each kind is logged and registered through MLflow in one sqlite tracking store; MLflow's
scoring app is built in-process from `mlflow.pyfunc.load_model` on the same version.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest

from mloop.jobs.batch import batch_predict
from mloop.registry.tracking import configure_mlflow
from mloop.serving.app import create_app
from mloop.serving.server import ServerThread
from mloop.settings import Settings
from tests.support import modelkit, serverproc
from tests.support.env import clean_environ
from tests.support.modelkit import PIP_REQUIREMENTS


@dataclass
class Kind:
    """How to log one kind of model, and the request bodies to compare on."""

    log: Callable[[str], None]  # logs and registers the model under the given name
    bodies: Callable[[], list[dict[str, Any]]]
    rows: Callable[[], list[Any]]  # /predict rows (objects or arrays)
    probabilities: bool  # /predict answers class probabilities
    table: Callable[[], pd.DataFrame]  # a batch-scoring file's content


def _iris() -> tuple[pd.DataFrame, np.ndarray]:
    from sklearn.datasets import load_iris

    data = load_iris(as_frame=True)
    frame = data.frame.drop(columns="target")
    frame.columns = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
    return frame, data.target.to_numpy()


def _diabetes() -> tuple[pd.DataFrame, np.ndarray]:
    from sklearn.datasets import load_diabetes

    data = load_diabetes(as_frame=True)
    return data.frame.drop(columns="target"), data.target.to_numpy()


def _mixed() -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(3)
    frame = pd.DataFrame(
        {
            "plan": rng.choice(["basic", "plus", "pro"], 120),
            "tenure": rng.uniform(0, 72, 120),
            "calls": rng.integers(0, 8, 120).astype(np.int64),
        }
    )
    y = ((frame["plan"] == "basic") | (frame["calls"] > 4)).astype(int).to_numpy()
    return frame, y


def _quiet(log: Callable[[], Any]) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # MLflow's pickle and environment notices
        log()


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    return modelkit.json_rows(frame)


def _frame_bodies(frame: pd.DataFrame) -> list[dict[str, Any]]:
    rows = _records(frame)
    columns = list(rows[0])
    return [
        {"dataframe_split": {"columns": columns, "data": [[r[c] for c in columns] for r in rows]}},
        {"dataframe_records": rows},
        {"instances": rows},
        {"inputs": {c: [r[c] for r in rows] for c in columns}},
    ]


def _tensor_bodies(array: np.ndarray) -> list[dict[str, Any]]:
    rows = array.tolist()
    return [
        {"inputs": rows},
        {"instances": rows},
        {"dataframe_split": {"data": rows}},
    ]


# -- the kinds -------------------------------------------------------------------------------


def _log_tensor(name: str) -> None:
    """MLflow's quickstart: a numpy array as the input example (a tensor signature)."""
    import mlflow
    from sklearn.ensemble import RandomForestClassifier

    X, y = _iris()
    model = RandomForestClassifier(n_estimators=8, random_state=0).fit(X.to_numpy(), y)
    _quiet(
        lambda: mlflow.sklearn.log_model(
            model,
            name="model",
            input_example=X.to_numpy()[:2],
            registered_model_name=name,
            serialization_format="cloudpickle",
        )
    )


def _log_no_signature(name: str) -> None:
    import mlflow
    from sklearn.linear_model import Ridge

    X, y = _diabetes()
    model = Ridge().fit(X.to_numpy(), y)
    _quiet(
        lambda: mlflow.sklearn.log_model(
            model, name="model", registered_model_name=name, pip_requirements=PIP_REQUIREMENTS
        )
    )


def _log_regressor(name: str) -> None:
    import mlflow
    from sklearn.linear_model import LinearRegression

    X, y = _diabetes()
    model = LinearRegression().fit(X, y)
    _quiet(
        lambda: mlflow.sklearn.log_model(
            model,
            name="model",
            input_example=X.head(3),
            registered_model_name=name,
            pip_requirements=PIP_REQUIREMENTS,
        )
    )


def _log_multiclass(name: str) -> None:
    import mlflow
    from sklearn.linear_model import LogisticRegression

    X, y = _iris()
    model = LogisticRegression(max_iter=500).fit(X, y)
    _quiet(
        lambda: mlflow.sklearn.log_model(
            model,
            name="model",
            input_example=X.head(3),
            registered_model_name=name,
            pip_requirements=PIP_REQUIREMENTS,
        )
    )


def _log_pipeline(name: str) -> None:
    import mlflow
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    X, y = _mixed()
    features = ColumnTransformer(
        [
            ("cat", OneHotEncoder(handle_unknown="ignore"), ["plan"]),
            ("num", StandardScaler(), ["tenure", "calls"]),
        ]
    )
    model = Pipeline([("features", features), ("model", LogisticRegression())]).fit(X, y)
    _quiet(
        lambda: mlflow.sklearn.log_model(
            model,
            name="model",
            input_example=X.head(3),
            registered_model_name=name,
            serialization_format="cloudpickle",
            pip_requirements=PIP_REQUIREMENTS,
        )
    )


class _Scores:
    """Custom models answering a DataFrame, a Series or a dict (pickled by MLflow)."""

    def __init__(self, shape: str) -> None:
        self.shape = shape

    def answer(self, frame: pd.DataFrame) -> Any:
        total = frame.sum(axis=1).to_numpy()
        if self.shape == "frame":
            return pd.DataFrame({"total": total, "big": total > 10})
        if self.shape == "series":
            return pd.Series(total, name="total")
        return {"total": total, "double": total * 2}


def _log_pyfunc(shape: str) -> Callable[[str], None]:
    def log(name: str) -> None:
        import mlflow

        class Scores(mlflow.pyfunc.PythonModel):
            def __init__(self) -> None:
                self.scorer = _Scores(shape)

            def predict(self, context, model_input, params=None):
                return self.scorer.answer(model_input)

        X, _ = _iris()
        _quiet(
            lambda: mlflow.pyfunc.log_model(
                name="model",
                python_model=Scores(),
                input_example=X.head(3),
                registered_model_name=name,
                pip_requirements=PIP_REQUIREMENTS,
            )
        )

    return log


def _log_booster(package: str) -> Callable[[str], None]:
    def log(name: str) -> None:
        import mlflow

        pytest.importorskip(package, reason=f"{package} is not installed (an optional flavor)")
        X, y = _iris()
        if package == "xgboost":
            import xgboost

            model = xgboost.XGBClassifier(n_estimators=5).fit(X, y)
            flavor = mlflow.xgboost
        else:
            import lightgbm

            model = lightgbm.LGBMClassifier(n_estimators=5, verbose=-1).fit(X, y)
            flavor = mlflow.lightgbm
        _quiet(
            lambda: flavor.log_model(
                model,
                name="model",
                input_example=X.head(3),
                registered_model_name=name,
                pip_requirements=[*PIP_REQUIREMENTS, package],
            )
        )

    return log


def _iris_rows(n: int = 5) -> pd.DataFrame:
    return _iris()[0].iloc[[0, 1, 60, 110, 149][:n]].reset_index(drop=True)


KINDS: dict[str, Kind] = {
    "tensor": Kind(
        _log_tensor,
        lambda: _tensor_bodies(_iris_rows().to_numpy()),
        lambda: _iris_rows().to_numpy().tolist(),
        True,
        _iris_rows,
    ),
    "no-signature": Kind(
        _log_no_signature,
        lambda: _tensor_bodies(_diabetes()[0].head(4).to_numpy()),
        lambda: _diabetes()[0].head(2).to_numpy().tolist(),
        False,
        lambda: _diabetes()[0].head(6),
    ),
    "regressor": Kind(
        _log_regressor,
        lambda: _frame_bodies(_diabetes()[0].head(4)),
        lambda: _records(_diabetes()[0].head(2)),
        False,
        lambda: _diabetes()[0].head(6),
    ),
    "multiclass": Kind(
        _log_multiclass,
        lambda: _frame_bodies(_iris_rows()),
        lambda: _records(_iris_rows(2)),
        True,
        _iris_rows,
    ),
    "pipeline": Kind(
        _log_pipeline,
        lambda: _frame_bodies(_mixed()[0].head(5)),
        lambda: _records(_mixed()[0].head(2)),
        True,
        lambda: _mixed()[0].head(6),
    ),
    "pyfunc-frame": Kind(
        _log_pyfunc("frame"),
        lambda: _frame_bodies(_iris_rows()),
        lambda: _records(_iris_rows(2)),
        False,
        _iris_rows,
    ),
    "pyfunc-series": Kind(
        _log_pyfunc("series"),
        lambda: _frame_bodies(_iris_rows()),
        lambda: _records(_iris_rows(2)),
        False,
        _iris_rows,
    ),
    "pyfunc-dict": Kind(
        _log_pyfunc("dict"),
        lambda: _frame_bodies(_iris_rows()),
        lambda: _records(_iris_rows(2)),
        False,
        _iris_rows,
    ),
    "xgboost": Kind(
        _log_booster("xgboost"),
        lambda: _frame_bodies(_iris_rows()),
        lambda: _records(_iris_rows(2)),
        True,
        _iris_rows,
    ),
    "lightgbm": Kind(
        _log_booster("lightgbm"),
        lambda: _frame_bodies(_iris_rows()),
        lambda: _records(_iris_rows(2)),
        True,
        _iris_rows,
    ),
}


@contextmanager
def in_process(app: Any, *, wait_for_model: bool = True) -> Iterator[httpx.Client]:
    """A client for `app` served by uvicorn in a thread of this process (lifespan run)."""
    with (
        ServerThread(app, wait_for_model=wait_for_model) as server,
        httpx.Client(base_url=server.url, timeout=60) as client,
    ):
        yield client


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    settings = modelkit.home_settings(tmp_path_factory.mktemp("model-kinds"))
    configure_mlflow(settings)
    return settings


@pytest.fixture(scope="module")
def logged(home: Settings) -> Callable[[str], str]:
    """Log a kind once per module; its reference (`models:/NAME/1`)."""
    done: dict[str, str] = {}

    def get(kind: str) -> str:
        if kind not in done:
            KINDS[kind].log(kind)
            done[kind] = f"models:/{kind}/1"
        return done[kind]

    return get


@pytest.fixture(params=list(KINDS), scope="module")
def served(request, home: Settings, logged) -> Iterator[tuple[str, Any, Any]]:
    """(kind, mloop's app, MLflow's scoring app) for one logged kind."""
    import mlflow
    from mlflow.pyfunc import scoring_server

    kind = request.param
    uri = logged(kind)
    reference = f"{kind}@production"
    mlflow.MlflowClient().set_registered_model_alias(kind, "production", "1")
    reference_app = scoring_server.init(mlflow.pyfunc.load_model(uri))
    with (
        in_process(create_app(reference, home)) as mloop,
        in_process(reference_app, wait_for_model=False) as theirs,
    ):
        assert mloop.get("/ready").status_code == 200, mloop.get("/ready").json()
        yield kind, mloop, theirs


def _same(got: Any, expected: Any, kind: str) -> bool:
    """Equal answers; a linear model's floats to the last bits (numpy's summation order
    depends on the memory layout of the frame, which mloop and MLflow build differently)."""
    if kind in ("regressor", "no-signature"):
        return got == pytest.approx(expected, rel=1e-12)
    return got == expected


def test_invocations_answer_as_mlflow_does(served) -> None:
    kind, mloop, theirs = served
    for body in KINDS[kind].bodies():
        expected = theirs.post("/invocations", json=body)
        got = mloop.post("/invocations", json=body)
        assert expected.status_code == 200, (body, expected.text)
        assert got.status_code == 200, (body, got.text)
        assert _same(got.json()["predictions"], expected.json()["predictions"], kind), body


def test_invocations_csv_answers_as_mlflow_does(served) -> None:
    kind, mloop, theirs = served
    table = KINDS[kind].table()
    headers = {"content-type": "text/csv"}
    got = mloop.post("/invocations", content=table.to_csv(index=False), headers=headers)
    assert got.status_code == 200, got.text
    if kind in ("tensor", "no-signature"):
        # MLflow 3.17 cannot read CSV for these ("TensorSpec only supports numpy types"; a
        # frame with names for a model fitted without): compare with its answer to the array.
        expected = theirs.post("/invocations", json={"inputs": table.to_numpy().tolist()})
    else:
        expected = theirs.post("/invocations", content=table.to_csv(index=False), headers=headers)
    assert expected.status_code == 200, expected.text
    assert _same(got.json()["predictions"], expected.json()["predictions"], kind)


def test_predict_and_predict_batch(served) -> None:
    kind, mloop, theirs = served
    spec = KINDS[kind]
    rows = spec.rows()
    mlflow_answer = theirs.post(
        "/invocations",
        json={"dataframe_records": _records(spec.table().head(len(rows)))}
        if kind not in ("tensor", "no-signature")
        else {"inputs": rows},
    ).json()["predictions"]
    one = mloop.post("/predict", json={"features": rows[0]})
    assert one.status_code == 200, one.text
    answer = one.json()
    many = mloop.post("/predict/batch", json={"instances": rows})
    assert many.status_code == 200, many.text
    predictions = many.json()["predictions"]
    assert len(predictions) == len(rows)
    assert ("probabilities" in answer) is spec.probabilities
    assert all(("probability" in p) is spec.probabilities for p in predictions)
    if spec.probabilities:
        assert answer["probability"] == max(answer["probabilities"].values())
    values = [p["prediction"] for p in predictions]
    assert values[0] == answer["prediction"]
    if kind == "pyfunc-dict":
        assert values == [{k: mlflow_answer[k][i] for k in mlflow_answer} for i in range(len(rows))]
    elif kind == "pyfunc-series":
        assert [{"total": v} for v in values] == mlflow_answer
    else:
        assert _same(values, mlflow_answer, kind)


def test_batch_scoring_file(served, home: Settings, tmp_path: Path) -> None:
    kind, _, theirs = served
    table = KINDS[kind].table()
    if kind in ("tensor", "no-signature"):  # a tensor model: any column names, in file order
        table.columns = [f"x{i}" for i in range(table.shape[1])]
    table.insert(0, "id", range(len(table)))
    source = tmp_path / "in.csv"
    table.to_csv(source, index=False)
    summary = batch_predict(f"{kind}@production", source, tmp_path / "out.parquet", settings=home)
    assert summary.scored == len(table) and summary.rejected == 0
    scored = pd.read_parquet(tmp_path / "out.parquet")
    assert scored["id"].tolist() == list(range(len(table)))
    values = table.drop(columns="id")
    body = (
        {"inputs": values.to_numpy().tolist()}
        if kind in ("tensor", "no-signature")
        else {"dataframe_records": _records(values)}
    )
    expected = theirs.post("/invocations", json=body).json()["predictions"]
    got = [
        json.loads(v) if isinstance(v, str) and v[:1] in "{[" else v for v in scored["prediction"]
    ]
    if kind == "pyfunc-dict":
        expected = [{k: expected[k][i] for k in expected} for i in range(len(table))]
    elif kind == "pyfunc-series":
        expected = [row["total"] for row in expected]
    assert (
        got == pytest.approx(expected) if kind in ("regressor", "no-signature") else got == expected
    )


def test_a_tensor_model_refuses_rows_of_the_wrong_width(home: Settings, logged) -> None:
    import mlflow

    logged("tensor")
    mlflow.MlflowClient().set_registered_model_alias("tensor", "production", "1")
    with in_process(create_app("tensor@production", home)) as mloop:
        answer = mloop.post("/predict", json={"features": [1.0, 2.0]})
        assert answer.status_code == 422
        assert "expected 4 values in signature order" in answer.json()["detail"]
        v2 = mloop.post(
            "/v2/models/tensor/infer",
            json={
                "inputs": [{"name": "x", "shape": [1, 3], "datatype": "FP64", "data": [1, 2, 3]}]
            },
        )
        assert v2.status_code == 422
        assert "shape [n, 4]" in v2.json()["error"]
        good = mloop.post(
            "/v2/models/tensor/infer",
            json={
                "inputs": [
                    {
                        "name": "x",
                        "shape": [2, 4],
                        "datatype": "FP64",
                        "data": [[5.1, 3.5, 1.4, 0.2], [6.3, 3.3, 6.0, 2.5]],
                    }
                ]
            },
        )
        assert good.status_code == 200, good.text
        outputs = {o["name"]: o for o in good.json()["outputs"]}
        assert outputs["label"]["data"] == [0, 2]
        assert outputs["probabilities"]["shape"] == [2, 3]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.slow
def test_tensor_model_matches_a_real_mlflow_models_serve(home: Settings, logged, tmp_path) -> None:
    import mlflow

    uri = logged("tensor")
    mlflow.MlflowClient().set_registered_model_alias("tensor", "production", "1")
    port = _free_port()
    bin_dir = Path(sys.executable).parent  # mlflow runs `uvicorn` from PATH
    env = clean_environ()
    env.update(
        MLFLOW_TRACKING_URI=home.tracking_uri,
        GIT_PYTHON_REFRESH="quiet",
        PATH=f"{bin_dir}{os.pathsep}{env.get('PATH', '')}",
    )
    log = tmp_path / "serve.log"
    with open(log, "w") as out:
        proc = subprocess.Popen(
            [str(bin_dir / "mlflow"), "models", "serve", "-m", uri, "--env-manager", "local"]
            + ["-p", str(port), "-h", "127.0.0.1"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        serverproc.wait_ready(url, proc, "/ping")
        with in_process(create_app("tensor@production", home)) as mloop:
            for body in KINDS["tensor"].bodies():
                expected = httpx.post(f"{url}/invocations", json=body, timeout=30)
                assert expected.status_code == 200, expected.text
                assert mloop.post("/invocations", json=body).json() == expected.json()
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
