"""Peer apps for benchmarks/serving.py, each run by uvicorn with 2 workers.

- `seed:app`: the seed document's server style: one `predict_proba` per request on a one-row
  DataFrame built from a pydantic model (a sync endpoint, so it runs in the threadpool rather
  than stalling the event loop as the seed's `async def` did).
- `floor:app`: bare Starlette; parses the JSON body and returns a constant. The floor of the
  HTTP stack: no framework can answer faster on this machine.

The model comes from the MLflow URI in BENCH_MODEL_URI (tracking URI from MLFLOW_TRACKING_URI).
"""

from __future__ import annotations

import os

import orjson
from pydantic import BaseModel
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route


async def _floor(request: Request) -> Response:
    orjson.loads(await request.body())
    return Response(b'{"prediction":1,"probability":0.9}', media_type="application/json")


floor = Starlette(routes=[Route("/predict", _floor, methods=["POST"])])


class PredictionRequest(BaseModel):
    features: dict[str, float]


def seed_app():
    """FastAPI app in the seed's style (factory: loads the model in each worker)."""
    import mlflow
    import pandas as pd
    from fastapi import FastAPI

    model = mlflow.sklearn.load_model(os.environ["BENCH_MODEL_URI"])
    app = FastAPI()

    @app.post("/predict")
    def predict(request: PredictionRequest) -> dict:
        frame = pd.DataFrame([request.features])
        probabilities = model.predict_proba(frame)[0]
        best = int(probabilities.argmax())
        return {"prediction": int(model.classes_[best]), "probability": float(probabilities[best])}

    return app
