"""`mloop drift --engine`: Parquet streamed by row batches, and the errors for what cannot be."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from mloop.cli.main import app
from mloop.data import generate_churn, write_table

runner = CliRunner()


def test_parquet_is_streamed_with_the_in_memory_verdicts(tmp_path):
    ref = write_table(generate_churn(3000, seed=1), tmp_path / "ref.parquet")
    cur = write_table(generate_churn(1000, seed=3, drift=True), tmp_path / "cur.parquet")
    csv = write_table(generate_churn(1000, seed=3, drift=True), tmp_path / "cur.csv")
    verdicts = {}
    for name, current in (("streamed", cur), ("in memory", csv)):
        out = tmp_path / f"{name}.json"
        result = runner.invoke(app, ["drift", str(ref), str(current), "--json", str(out)])
        assert result.exit_code == 0, result.output
        body = json.loads(out.read_text())
        verdicts[name] = {c: v["drift_detected"] for c, v in body["columns"].items()}
    assert verdicts["streamed"] == verdicts["in memory"]
    assert verdicts["streamed"]["tenure_months"] is True


def test_engine_errors_name_the_problem(tmp_path):
    ref = write_table(generate_churn(1200, seed=1), tmp_path / "ref.csv")
    cur = write_table(generate_churn(300, seed=2), tmp_path / "cur.csv")
    result = runner.invoke(app, ["drift", str(ref), str(cur), "--engine", "spark"])
    assert result.exit_code != 0 and "unknown engine 'spark'" in result.output
    result = runner.invoke(app, ["drift", str(ref), str(cur), "--engine", "ray"])
    assert result.exit_code != 0 and "--engine ray reads two Parquet files" in result.output
    assert "Traceback" not in result.output
