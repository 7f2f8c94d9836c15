"""Batch drift: `mloop drift` against Evidently 0.7's DataDriftPreset on the same Parquet files.

    .venv/bin/python benchmarks/drift_vs_evidently.py                 # 1,000,000 + 100,000 x 50
    .venv/bin/python benchmarks/drift_vs_evidently.py --ref-rows 100000 --cur-rows 10000

Generates a reference and a current table (numeric floats, small-integer counts, categorical
strings, some missing values) with drift injected into known columns, then runs each tool as
its user would, end to end in its own process (start-up, imports, reading both files, the
statistics, writing the JSON and the HTML report): mloop's installed CLI
(`mloop drift REF CUR --json J --out H`), and a script running Evidently's
`Report([DataDriftPreset()])` and saving its JSON and HTML, in its own virtualenv
(benchmarks/.venv-evidently, created on first use: Evidently 0.7 needs pandas < 3). Both get
the same column types. Prints CPU time (user + sys, from wait4: fair on a shared machine)
and wall time of each, their ratios (target >= 50x), per-column verdict agreement (target
100%), whether every injected column was found, and mloop's peak RSS against the tables'
in-memory size (target <= 1.3x).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import venv
from pathlib import Path

HERE = Path(__file__).resolve().parent
EVIDENTLY_VENV = HERE / ".venv-evidently"
EVIDENTLY_REQS = HERE / "requirements-evidently.txt"

N_FLOAT, N_INT, N_CAT = 30, 5, 15  # 50 columns
DRIFTED = ["f00", "f05", "f10", "f15", "f20", "f25", "i30", "i33", "c35", "c40", "c45"]


# -- data ------------------------------------------------------------------------------------


def make_tables(ref_rows: int, cur_rows: int, folder: Path, seed: int = 7) -> tuple[Path, Path]:
    """Write ref.parquet and cur.parquet; the columns in DRIFTED get a shift in `cur`."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    folder.mkdir(parents=True, exist_ok=True)
    ref_path, cur_path = folder / f"ref_{ref_rows}.parquet", folder / f"cur_{cur_rows}.parquet"
    if ref_path.exists() and cur_path.exists():
        return ref_path, cur_path
    for path, rows, drift in ((ref_path, ref_rows, False), (cur_path, cur_rows, True)):
        rng = np.random.default_rng(seed + drift)
        cols: dict[str, object] = {}
        for i in range(N_FLOAT):
            name = f"f{i:02d}"
            shift = drift and name in DRIFTED
            shape = i % 5
            if shape == 0:
                x = rng.normal(50 + 5 * shift, 10, rows)  # mean shift of half a std
            elif shape == 1:
                x = rng.lognormal(1.0, 0.6 * (1.5 if shift else 1.0), rows)  # wider
            elif shape == 2:
                x = rng.uniform(0, 100 + 40 * shift, rows)  # longer range
            elif shape == 3:
                x = rng.exponential(2.0 * (1.4 if shift else 1.0), rows)
            else:
                mix = rng.random(rows) < (0.7 if shift else 0.3)
                x = np.where(mix, rng.normal(0, 1, rows), rng.normal(5, 1, rows))
            if i % 4 == 0:
                x[rng.random(rows) < 0.05] = np.nan  # 5% missing
            cols[name] = x
        for i in range(N_FLOAT, N_FLOAT + N_INT):
            name = f"i{i:02d}"
            shift = drift and name in DRIFTED
            if i % 2 == 0:
                cols[name] = rng.poisson(3 + 2 * shift, rows).astype(np.int64)  # ~12 values
            else:
                p = [0.4, 0.3, 0.2, 0.1] if not shift else [0.2, 0.2, 0.3, 0.3]
                cols[name] = rng.choice(4, rows, p=p).astype(np.int64)  # 4 values
        for i in range(N_FLOAT + N_INT, N_FLOAT + N_INT + N_CAT):
            name = f"c{i:02d}"
            shift = drift and name in DRIFTED
            k = (3, 5, 10, 40, 200)[i % 5]
            weights = 1.0 / np.arange(1, k + 1)
            if shift:
                weights = weights[::-1]  # the rare categories become common
            labels = np.array([f"{name}_v{j:03d}" for j in range(k)], dtype=object)
            values = labels[rng.choice(k, rows, p=weights / weights.sum())]
            if i % 3 == 0:
                values[rng.random(rows) < 0.03] = None
            cols[name] = pa.array(values, type=pa.string())
        pq.write_table(pa.table(cols), path)
    return ref_path, cur_path


def kinds() -> tuple[list[str], list[str]]:
    numeric = [f"f{i:02d}" for i in range(N_FLOAT)] + [
        f"i{i:02d}" for i in range(N_FLOAT, N_FLOAT + N_INT)
    ]
    categorical = [f"c{i:02d}" for i in range(N_FLOAT + N_INT, N_FLOAT + N_INT + N_CAT)]
    return numeric, categorical


# -- child processes -------------------------------------------------------------------------


def run_child(cmd: list[str]) -> dict[str, float]:
    """Run a command to its end: wall time, CPU time (user + sys) and peak RSS in bytes."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"failed ({os.waitstatus_to_exitcode(status)}): {' '.join(cmd)}")
    cpu = usage.ru_utime + usage.ru_stime
    return {"wall": wall, "cpu": cpu, "rss": usage.ru_maxrss * 1024}  # Linux: KiB


def mloop_cmd(ref: Path, cur: Path, out: Path) -> list[str]:
    """The installed `mloop` script of this interpreter's environment, as a user calls it."""
    script = Path(sys.executable).parent / "mloop"
    return [str(script), "drift", str(ref), str(cur), "--json", str(out),
            "--out", str(out.with_suffix(".html"))]  # fmt: skip


def size_child(ref: str, cur: str, out: str) -> None:
    """Runs inside a child: the in-memory size of both tables as pandas DataFrames."""
    import pandas as pd

    size = sum(int(pd.read_parquet(p).memory_usage(deep=True).sum()) for p in (ref, cur))
    Path(out).write_text(json.dumps({"bytes": size}))


EVIDENTLY_SCRIPT = r"""
import json, sys
import pandas as pd
from evidently import DataDefinition, Dataset, Report
from evidently.presets import DataDriftPreset
ref_path, cur_path, out, numeric, categorical, report = sys.argv[1:7]
numeric, categorical = numeric.split(","), categorical.split(",")
ref, cur = pd.read_parquet(ref_path), pd.read_parquet(cur_path)
definition = DataDefinition(numerical_columns=numeric, categorical_columns=categorical)
snapshot = Report([DataDriftPreset()], include_tests=True).run(
    current_data=Dataset.from_pandas(cur, data_definition=definition),
    reference_data=Dataset.from_pandas(ref, data_definition=definition),
)
result = snapshot.dict()
snapshot.save_html(report + ".html")  # what a user of the report writes, as mloop does
snapshot.save_json(report + ".json")
verdicts, values = {}, {}
for test in result["tests"]:
    name = test["name"]
    if name.startswith("Value Drift for column "):
        verdicts[name[len("Value Drift for column "):]] = test["status"] == "FAIL"
for metric in result["metrics"]:
    config = metric.get("config", {})
    if config.get("type", "").endswith("ValueDrift"):
        values[config["column"]] = {"value": metric["value"], "method": config.get("method"),
                                    "threshold": config.get("threshold")}
json.dump({"verdicts": verdicts, "values": values}, open(out, "w"))
"""


def ensure_evidently() -> Path:
    python = EVIDENTLY_VENV / "bin" / "python"
    if not python.exists():
        print(f"creating {EVIDENTLY_VENV} (Evidently 0.7 needs pandas < 3) ...", flush=True)
        venv.create(EVIDENTLY_VENV, with_pip=True)
        subprocess.run(
            [str(python), "-m", "pip", "install", "-q", "-r", str(EVIDENTLY_REQS)], check=True
        )
    return python


# -- the comparison --------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ref-rows", type=int, default=1_000_000)
    parser.add_argument("--cur-rows", type=int, default=100_000)
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "mloop-drift")
    parser.add_argument("--skip-evidently", action="store_true")
    args = parser.parse_args()

    work = args.workdir
    print(f"data: {args.ref_rows:,} + {args.cur_rows:,} rows x 50 columns in {work}", flush=True)
    me = [sys.executable, __file__]
    # The tables are made in a child: a child's peak RSS (wait4's ru_maxrss) starts from what
    # the parent held when it forked, so a parent holding the tables would inflate mloop's.
    run_child([*me, "_tables", str(args.ref_rows), str(args.cur_rows), str(work)])
    ref, cur = make_tables(args.ref_rows, args.cur_rows, work)  # the files made just now
    run_child([*me, "_size", str(ref), str(cur), str(work / "size.json")])
    data_bytes = json.loads((work / "size.json").read_text())["bytes"]

    # start-up baseline: files just above the 1000 rows where the streamed path begins
    run_child([*me, "_tables", "2000", "200", str(work / "tiny")])
    tiny_ref, tiny_cur = make_tables(2000, 200, work / "tiny")
    tiny = run_child(mloop_cmd(tiny_ref, tiny_cur, work / "tiny.json"))
    m = run_child(mloop_cmd(ref, cur, work / "mloop.json"))
    mine = json.loads((work / "mloop.json").read_text())
    mloop_verdicts = {c: v["drift_detected"] for c, v in mine["columns"].items()}

    print(f"\nmloop     cpu {m['cpu']:7.2f} s  wall {m['wall']:7.2f} s  (2,000-row files: cpu "
          f"{tiny['cpu']:.2f} s)  dataset drift: {mine['dataset_drift']}")  # fmt: skip
    found = [c for c in DRIFTED if mloop_verdicts.get(c)]
    missed = sorted(set(DRIFTED) - set(found))
    print(f"injected drift found by mloop: {len(found)}/{len(DRIFTED)}"
          f"{' missing: ' + ', '.join(missed) if missed else ''}")  # fmt: skip
    extra = sorted(c for c, v in mloop_verdicts.items() if v and c not in DRIFTED)
    print(f"columns flagged that had no injected drift: {extra or 'none'}")
    mib = 2**20
    print(f"in-memory data {data_bytes / mib:,.0f} MiB; mloop peak RSS {m['rss'] / mib:,.0f} MiB "
          f"= {m['rss'] / data_bytes:.2f}x the data (target <= 1.3x; interpreter and imports "
          f"included: {tiny['rss'] / mib:,.0f} MiB on 2,000-row files)")  # fmt: skip

    if args.skip_evidently:
        return
    python = ensure_evidently()
    numeric, categorical = kinds()
    script = work / "evidently_run.py"
    script.write_text(EVIDENTLY_SCRIPT)
    out = work / "evidently.json"
    report = work / "evidently-report"
    e = run_child([str(python), str(script), str(ref), str(cur), str(out),
                   ",".join(numeric), ",".join(categorical), str(report)])  # fmt: skip
    theirs = json.loads(out.read_text())
    print(f"Evidently cpu {e['cpu']:7.2f} s  wall {e['wall']:7.2f} s  peak RSS "
          f"{e['rss'] / mib:,.0f} MiB")  # fmt: skip
    print(f"speed, end to end: mloop is {e['cpu'] / m['cpu']:.1f}x faster in CPU time, "
          f"{e['wall'] / m['wall']:.1f}x in wall time (target >= 50x)")  # fmt: skip
    columns = sorted(theirs["verdicts"])
    agree = [c for c in columns if theirs["verdicts"][c] == mloop_verdicts.get(c)]
    print(f"verdict agreement: {len(agree)}/{len(columns)} columns "
          f"({len(agree) / len(columns):.0%}; target 100%)")  # fmt: skip
    for c in sorted(set(columns) - set(agree)):
        e, m = theirs["values"].get(c, {}), mine["columns"][c]
        print(f"  differs: {c}: Evidently {e.get('method')}={e.get('value')} "
              f"drift={theirs['verdicts'][c]}; mloop {m['statistic']}={m['value']} "
              f"drift={m['drift_detected']}")  # fmt: skip
    found_e = [c for c in DRIFTED if theirs["verdicts"].get(c)]
    print(f"injected drift found by Evidently: {len(found_e)}/{len(DRIFTED)}")
    close = [
        c for c in columns
        if theirs["values"].get(c, {}).get("value") is not None
        and mine["columns"][c]["value"] is not None
        and abs(theirs["values"][c]["value"] - mine["columns"][c]["value"]) <= 1e-6
        + 1e-3 * abs(theirs["values"][c]["value"])
    ]  # fmt: skip
    print(f"statistic values equal to Evidently's (rel 1e-3): {len(close)}/{len(columns)}")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "_size":
        size_child(*sys.argv[2:5])
    elif len(sys.argv) > 1 and sys.argv[1] == "_tables":
        make_tables(int(sys.argv[2]), int(sys.argv[3]), Path(sys.argv[4]))
    else:
        main()
