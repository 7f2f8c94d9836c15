"""`mloop drift`: compare two tables (or a table with a model's reference profile) for drift."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from mloop.cli.console import console, err_console
from mloop.errors import NotFoundError, UserError, ValidationError

DRIFT_EXIT_CODE = 10  # --fail-on-drift: distinct from every error exit code (1-7)


def drift(
    files: list[Path] = typer.Argument(
        ...,
        metavar="[REFERENCE] CURRENT",
        help="Reference and current tables (.csv, .parquet, .pq). With --model, CURRENT alone "
        "compares against the reference profile logged with the model version.",
        show_default=False,
    ),
    model: str | None = typer.Option(
        None,
        "--model",
        "-m",
        help="NAME/VERSION or NAME@alias: compare the model's input columns (dates as dates).",
    ),
    out: Path | None = typer.Option(None, "--out", "-o", help="Write the HTML report here."),
    json_out: Path | None = typer.Option(None, "--json", help="Write the JSON result here."),
    columns: str | None = typer.Option(
        None, "--columns", "-c", help="Comma-separated columns to compare (default: all)."
    ),
    method: str = typer.Option(
        "auto",
        "--method",
        help="auto, wasserstein_normed, jensen_shannon, psi, chi_squared, ks or z.",
    ),
    threshold: float | None = typer.Option(
        None, "--threshold", help="Override the method's threshold for every column."
    ),
    drift_share: float = typer.Option(
        0.5, "--drift-share", min=0.0, max=1.0, help="Share of drifted columns for dataset drift."
    ),
    fail_on_drift: bool = typer.Option(
        False, "--fail-on-drift", help=f"Exit with code {DRIFT_EXIT_CODE} on dataset drift (CI)."
    ),
    engine: str = typer.Option(
        "local",
        "--engine",
        help="local, or ray (Parquet read and summarised on Ray Data: the `ray` extra).",
    ),
) -> None:
    """Detect data drift between a reference and a current table, per column and overall.

    Small references (<= 1000 rows) use p-value tests (KS, chi-squared, Z) at 0.05; larger ones
    effect sizes (normalised Wasserstein, Jensen-Shannon) at 0.1: Evidently's defaults.

    Example: mloop drift data/train.parquet data/today.parquet --out drift.html --json drift.json
    """
    from mloop.monitoring.report_html import render  # lazy: +89 ms at CLI start-up
    from mloop.stats.verdict import normalize_method  # lazy: +75 ms at CLI start-up

    method = normalize_method(method)
    if engine not in ("local", "ray"):
        raise UserError(f"unknown engine {engine!r}", hint="use --engine local or --engine ray")
    if len(files) > 2 or (len(files) == 1 and model is None):
        raise UserError(
            "give REFERENCE and CURRENT tables, or CURRENT alone with --model",
            hint="mloop drift train.csv today.csv   or   mloop drift today.csv --model churn/3",
        )
    selected = [c.strip() for c in columns.split(",") if c.strip()] if columns else None
    kinds: dict[str, str] = {}
    if model is not None:
        model_columns, kinds = model_inputs(model)
        selected = selected or model_columns
    with _progress() as progress:
        if len(files) == 1:
            result = _against_profile(model, files[0], selected, method, threshold, drift_share)
            names = (f"{model} (training profile)", files[0].name)
        else:
            result = _two_tables(
                progress, files, selected, kinds, method, threshold, drift_share, engine
            )
            names = (files[0].name, files[1].name)
    _print_summary(result)
    if json_out is not None:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_text(json.dumps(result.to_dict(), indent=2, allow_nan=False) + "\n")
        console.print(f"wrote [bold]{json_out}[/]", highlight=False, soft_wrap=True)
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        html = render(result, reference_name=names[0], current_name=names[1])
        out.write_text(html, encoding="utf-8")
        console.print(f"wrote [bold]{out}[/]", highlight=False, soft_wrap=True)
    if fail_on_drift and result.dataset_drift:
        raise typer.Exit(code=DRIFT_EXIT_CODE)


def _progress() -> Progress:
    return Progress(
        SpinnerColumn(),
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
        console=err_console,
        transient=True,
    )


def _two_tables(progress, files, selected, kinds, method, threshold, drift_share, engine):
    if _streamable(files, method, engine):
        return _streamed(progress, files, selected, kinds, method, threshold, drift_share, engine)
    from mloop.stats.samples import detect_drift  # lazy: +1.2 s at CLI start-up

    task = progress.add_task("reading", total=None)
    reference = read_columns(files[0], selected)
    current = read_columns(files[1], selected or [str(c) for c in reference.columns])
    names = selected or [str(c) for c in reference.columns]
    progress.update(task, description="comparing", total=len(names), completed=0)
    result = detect_drift(
        reference,
        current,
        columns=names,
        method=method,
        threshold=threshold,
        drift_share=drift_share,
        kinds=kinds,
        on_column=lambda name: progress.update(task, advance=1, description=name),
    )
    return result


def _streamable(files: list[Path], method: str, engine: str) -> bool:
    """Parquet on both sides, more than SMALL_REFERENCE rows, a streamed method: by batches."""
    from mloop.stats.scan import PARQUET_SUFFIXES, STREAMED_METHODS  # lazy: pyarrow, numpy
    from mloop.stats.verdict import SMALL_REFERENCE  # lazy: numpy at CLI start-up

    # (not mloop.data.io.table_format: importing mloop.data costs pandas, +0.4 s)
    parquet = all(p.suffix.lower() in PARQUET_SUFFIXES and p.is_file() for p in files)
    if engine == "ray" and not (parquet and method in STREAMED_METHODS):
        raise UserError(
            "--engine ray reads two Parquet files with --method auto or wasserstein_normed",
            hint="convert the tables to Parquet, or use --engine local",
        )
    if not parquet or method not in STREAMED_METHODS:
        return False
    import pyarrow.parquet as pq  # lazy: +0.1 s at CLI start-up

    try:
        return engine == "ray" or pq.ParquetFile(files[0]).metadata.num_rows > SMALL_REFERENCE
    except (OSError, ValueError) as exc:
        raise ValidationError(f"cannot read parquet file {str(files[0])!r}: {exc}") from exc


def _streamed(progress, files, selected, kinds, method, threshold, drift_share, engine):
    import pyarrow.parquet as pq  # lazy: +0.1 s at CLI start-up

    from mloop.stats.scan import scan_drift  # lazy: pyarrow and numpy at CLI start-up

    task = progress.add_task("reading by row batches", total=None)
    # every column when none are named, identifiers included: as the in-memory path here
    names = selected or pq.read_schema(files[0]).names
    return scan_drift(
        files[0], files[1], columns=names, kinds=kinds, method=method, threshold=threshold,
        drift_share=drift_share, engine=engine,
        on_rows=lambda rows: progress.update(task, advance=rows),
    )  # fmt: skip


def _against_profile(model, path, selected, method, threshold, drift_share):
    from mloop.registry.profile_store import load_profile  # lazy: +1.3 s at CLI start-up
    from mloop.stats.binned import compare  # lazy: +1.5 s at CLI start-up
    from mloop.stats.profile import ReferenceProfile  # lazy: +1.4 s at CLI start-up

    run_id = _version(model).run_id
    profile = load_profile(run_id) if run_id else None
    if profile is None:
        raise NotFoundError(
            f"model {model} has no reference profile logged with its training run",
            hint="pass a REFERENCE table as well, or retrain the model with this mloop",
        )
    if selected:
        unknown = [c for c in selected if c not in profile.features]
        if unknown:
            raise ValidationError(f"the reference profile has no column {', '.join(unknown)}")
        profile = ReferenceProfile(
            {c: profile.features[c] for c in selected},
            profile.rows,
            schema_version=profile.schema_version,
        )
    current = read_columns(path, list(profile.features))
    return compare(
        profile, profile.counts(current), method=method, threshold=threshold,
        drift_share=drift_share,
    )  # fmt: skip


def _version(model: str):
    from mloop.registry.service import Registry  # lazy: +0.3 s at CLI start-up

    return Registry().get_version(model)


def model_inputs(model: str) -> tuple[list[str], dict[str, str]]:
    """The raw input columns of a registered version and their kinds (from its feature spec)."""
    import mlflow  # lazy: +1.1 s at CLI start-up

    version = _version(model)
    spec = version.lineage.get("mloop.feature_spec")  # the training run's `mloop.*` tags
    if spec:
        try:
            data = json.loads(spec)
            kinds = {c: "numeric" for c in data.get("numeric", [])}
            kinds.update({c: "categorical" for c in data.get("categorical", [])})
            kinds.update({c: "date" for c in data.get("date", [])})
            return list(kinds), kinds
        except (json.JSONDecodeError, AttributeError):
            pass
    info = mlflow.models.get_model_info(version.uri)
    if info.signature is None:
        raise ValidationError(f"model {model} has no signature: pass --columns")
    return list(info.signature.inputs.input_names()), {}


def read_columns(path: Path, columns: list[str] | None):
    """A table, with only `columns` read from Parquet (so wide files cost what is compared)."""
    from mloop.data.io import read_table, table_format  # lazy: +0.3 s at CLI start-up

    if table_format(path) != "parquet" or not Path(path).is_file():
        frame = read_table(path)  # CSV, and the clear errors for a missing file
    else:
        import pyarrow.parquet as pq  # lazy: +0.1 s at CLI start-up

        try:
            present = set(pq.read_schema(path).names)
        except (OSError, ValueError) as exc:
            raise ValidationError(f"cannot read parquet file {str(path)!r}: {exc}") from exc
        absent = [c for c in columns or [] if c not in present]
        if absent:
            raise ValidationError(
                f"{str(path)!r} has no column {', '.join(map(repr, absent[:5]))}",
                hint=f"its columns: {', '.join(sorted(present)[:20])}",
            )
        frame = _read_parquet_by_column(path, columns or pq.read_schema(path).names)
    if columns is not None:
        absent = [c for c in columns if c not in frame.columns]
        if absent:
            raise ValidationError(
                f"{str(path)!r} has no column {', '.join(map(repr, absent[:5]))}",
                hint=f"its columns: {', '.join(map(str, list(frame.columns)[:20]))}",
            )
        frame = frame[columns]
    return frame


def _read_parquet_by_column(path: Path, columns: list[str]):
    """Parquet into pandas one column at a time, on the system allocator.

    Reading the whole Arrow table first and converting it holds the data twice; column by
    column, with memory returned to the OS as each Arrow column is dropped, the peak stays
    near the size of the DataFrame itself (see docs/benchmarks.md).
    """
    import pandas as pd  # lazy: +0.4 s at CLI start-up
    import pyarrow as pa  # lazy: +0.1 s at CLI start-up
    import pyarrow.parquet as pq  # lazy: +0.1 s at CLI start-up

    previous = pa.default_memory_pool()
    pa.set_memory_pool(pa.system_memory_pool())
    try:
        parquet = pq.ParquetFile(path)
        data = {name: parquet.read(columns=[name]).column(0).to_pandas() for name in columns}
    except (OSError, ValueError) as exc:  # pyarrow's ArrowInvalid is a ValueError
        raise ValidationError(f"cannot read parquet file {str(path)!r}: {exc}") from exc
    finally:
        pa.set_memory_pool(previous)
    return pd.DataFrame(data, copy=False)


def _print_summary(result) -> None:
    table = Table(title="drift per column", title_justify="left")
    for name in ("column", "type", "statistic", "value", "threshold", "drift"):
        table.add_column(name, justify="right" if name in ("value", "threshold") else "left")
    for f in result.columns:
        table.add_row(
            f.column,
            f.kind,
            f.statistic,
            "n/a" if f.value is None else f"{f.value:.4g}",
            f"{f.threshold:g}",
            "[bold red]drifted[/]" if f.drift_detected else "no",
        )
    console.print(table)
    verdict = "[bold red]dataset drift[/]" if result.dataset_drift else "[green]no dataset drift[/]"
    console.print(
        f"{verdict}: {result.number_of_drifted_columns} of {len(result.columns)} columns drifted "
        f"({result.share_of_drifted_columns:.0%}; threshold {result.drift_share:.0%})",
        highlight=False,
    )
    for name, reason in result.skipped.items():
        console.print(f"skipped {name}: {reason} (name it with --columns to test it)")
