"""Loading models from several threads at once (a server's variants start together)."""

from __future__ import annotations

import threading

import mlflow
import pytest

from mloop.model.loader import load_model
from mloop.registry.tracking import configure_mlflow
from tests.support import modelkit


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    settings = modelkit.home_settings(tmp_path_factory.mktemp("loader-threads"))
    trained = modelkit.train_and_register(settings)
    modelkit.train_and_register(settings, alias="candidate")
    return trained


def _uri(version: int) -> str:
    return f"models:/{modelkit.NAME}/{version}"


def test_flavor_loads_from_several_threads_run_one_at_a_time(trained, monkeypatch):
    """A flavor's first load imports its modules; two at once can fail halfway
    (`partially initialized module 'sklearn.base'`), so loads never overlap."""
    configure_mlflow(trained.settings)
    real = mlflow.sklearn.load_model
    lock = threading.Lock()
    inside = {"now": 0, "most": 0}
    both = threading.Event()

    def probe(uri, *args, **kwargs):
        with lock:
            inside["now"] += 1
            inside["most"] = max(inside["most"], inside["now"])
            if inside["now"] == 2:
                both.set()
        both.wait(1.0)  # give a concurrent load the chance to come in
        try:
            return real(uri, *args, **kwargs)
        finally:
            with lock:
                inside["now"] -= 1

    monkeypatch.setattr(mlflow.sklearn, "load_model", probe)
    loaded, errors = [], []
    start = threading.Barrier(2)

    def load(version: int) -> None:
        start.wait()
        try:
            loaded.append(load_model(_uri(version), name="churn", version=str(version)))
        except Exception as exc:
            errors.append(exc)

    threads = [threading.Thread(target=load, args=(v,)) for v in (1, 2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert sorted(m.version for m in loaded) == ["1", "2"]
    assert inside["most"] == 1


def test_a_load_failing_on_a_half_done_import_is_tried_again_at_once(trained, monkeypatch):
    configure_mlflow(trained.settings)
    real = mlflow.sklearn.load_model
    calls = []

    def flaky(uri, *args, **kwargs):
        calls.append(uri)
        if len(calls) == 1:
            raise ImportError(
                "cannot import name 'clone' from partially initialized module 'sklearn.base'"
            )
        return real(uri, *args, **kwargs)

    monkeypatch.setattr(mlflow.sklearn, "load_model", flaky)
    model = load_model(_uri(1), name="churn", version="1")
    assert model.flavor == "sklearn" and len(calls) == 2


def test_a_load_failing_for_another_reason_is_not_retried(trained, monkeypatch):
    configure_mlflow(trained.settings)
    calls = []

    def broken(uri, *args, **kwargs):
        calls.append(uri)
        raise ValueError("bad pickle")

    monkeypatch.setattr(mlflow.sklearn, "load_model", broken)
    with pytest.raises(Exception, match="cannot load model .*ValueError: bad pickle"):
        load_model(_uri(1), name="churn", version="1")
    assert len(calls) == 1
