"""The ``recommender`` command line: one thin command per job, logic lives in the library."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from recommender.data import Dataset


class FileFormat(StrEnum):
    """File format of written tables."""

    parquet = "parquet"
    csv = "csv"


app = typer.Typer(
    name="recommender",
    help="Learn which leadership nudges improve managers' next 360 and engagement, and serve them.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.command()
def simulate(
    out: Annotated[Path, typer.Option(help="Folder to write the six tables and truth/ into.")],
    managers: Annotated[int, typer.Option(min=10, help="Managers at the start, all orgs.")] = 2000,
    orgs: Annotated[int, typer.Option(min=1, help="Organisations.")] = 3,
    years: Annotated[float, typer.Option(min=1.0, help="Years of history.")] = 3.0,
    seed: Annotated[int, typer.Option(help="Random seed; same seed, same files.")] = 0,
    fmt: Annotated[FileFormat, typer.Option("--format", help="Table file format.")] = (
        FileFormat.parquet
    ),
) -> None:
    """Simulate organisations with known true nudge effects and write them to OUT."""
    from recommender.simulation import SimulationConfig, simulate_organisation, write_simulation

    config = SimulationConfig(n_managers=managers, n_orgs=orgs, years=years, seed=seed)
    result = simulate_organisation(config)
    paths = write_simulation(result, out, fmt=fmt.value)
    for path in paths:
        typer.echo(f"wrote {path}")


@app.command()
def validate(
    data: Annotated[Path, typer.Argument(help="Folder with the six tables (CSV or Parquet).")],
) -> None:
    """Check a folder of input tables; print row counts, or every violation and exit 1."""
    from recommender.data import load_dataset

    with _exit_on_bad_input():
        dataset = load_dataset(data)
    _print_summary(data, dataset)


@app.command()
def demo(
    data: Annotated[Path, typer.Option(help="Where the default simulated org lives.")] = Path(
        "data/generated/default"
    ),
    managers: Annotated[int, typer.Option(min=10, help="Managers to simulate if absent.")] = 2000,
    seed: Annotated[int, typer.Option(help="Simulation seed.")] = 0,
    api_port: Annotated[int, typer.Option(min=1, max=65535, help="Ranking API port.")] = 8000,
    ui_port: Annotated[int, typer.Option(min=1, max=65535, help="MLflow UI port.")] = 5000,
    retrain: Annotated[
        bool, typer.Option("--retrain", help="Train even if the champion saw this data.")
    ] = False,
    serve: Annotated[
        bool, typer.Option("--serve/--no-serve", help="Start the API and the MLflow UI.")
    ] = True,
    config: Annotated[Path | None, typer.Option(help="Training YAML (default: built-in).")] = None,
) -> None:
    """The main job: simulate (unless present), train + promote, serve the API and MLflow UI."""
    from recommender.demo import DemoError, run_demo

    with _exit_on_bad_input():
        try:
            run_demo(data, managers, seed, api_port, ui_port, serve, retrain=retrain, config=config)
        except DemoError as error:
            raise ValueError(str(error)) from None


@app.command()
def train(
    data: Annotated[Path, typer.Option(help="Folder with the six tables (CSV or Parquet).")],
    config: Annotated[
        Path | None, typer.Option(help="YAML training config (default: the built-in default).")
    ] = None,
    promote: Annotated[
        bool | None,
        typer.Option(
            "--promote/--no-promote", help="Run the promotion gate (default: as the config says)."
        ),
    ] = None,
) -> None:
    """Train, evaluate off-policy on a later window, log to MLflow and register the model."""
    from recommender.pipeline import run_train

    with _exit_on_bad_input():
        result = run_train(data, config, promote=promote)
    typer.echo(f"run {result.run_id}: registered {result.model_uri}")
    if result.promoted is not None:
        verdict = "promoted to champion" if result.promoted else "not promoted"
        typer.echo(f"promotion gate: {verdict} ({result.gate_reason})")


@app.command()
def promote(
    data: Annotated[Path, typer.Option(help="Folder with the six tables the gate evaluates on.")],
    config: Annotated[
        Path | None, typer.Option(help="YAML training config (default: the built-in default).")
    ] = None,
    version: Annotated[
        str | None, typer.Option(help="Model version to consider (default: alias candidate).")
    ] = None,
) -> None:
    """Move alias `champion` to a candidate if it is not significantly worse (promotion gate)."""
    from recommender.pipeline import run_promote

    with _exit_on_bad_input():
        decision = run_promote(data, config, version=version)
    verdict = "promoted to champion" if decision.promoted else "not promoted"
    typer.echo(f"version {decision.candidate_version}: {verdict} ({decision.reason})")


@app.command()
def loop(
    rounds: Annotated[int, typer.Option(min=1, help="Closed-loop rounds after the history.")] = 4,
    managers: Annotated[int, typer.Option(min=10, help="Managers at the start, all orgs.")] = 3000,
    seed: Annotated[int, typer.Option(help="Simulation seed.")] = 0,
    out: Annotated[
        Path, typer.Option(help="New folder: rounds' data, event store, truth, results.")
    ] = Path("data/generated/loop"),
    config: Annotated[
        Path | None,
        typer.Option(help="YAML training config (default: as training/configs/loop.yaml)."),
    ] = None,
) -> None:
    """Closed loop on the simulator: serve the champion, log outcomes, retrain, gate; repeat."""
    from recommender.closed_loop import format_table, run_loop

    def progress(row: dict[str, object]) -> None:
        typer.echo(
            f"round {row['round']}: served {row['true_value_served_expected']:.4f} "
            f"logging {row['true_value_logging']:.4f} oracle {row['true_value_oracle']:.4f} "
            f"(trained v{row['trained_version']}, promoted={row['promoted']})"
        )

    with _exit_on_bad_input():
        result = run_loop(rounds, managers, seed, out, config_path=config, on_round=progress)
    typer.echo(format_table(result.table))
    typer.echo(f"MLflow parent run {result.parent_run_id}; {result.csv_path}; {result.plot_path}")


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to bind (loopback by default).")] = (
        "127.0.0.1"
    ),
    port: Annotated[int, typer.Option(min=1, max=65535, help="TCP port.")] = 8000,
) -> None:
    """Serve the ranking API (settings from NUDGE_* environment variables; see README)."""
    from serving.app import run_serve
    from serving.settings import SettingsError

    try:
        run_serve(host, port)
    except SettingsError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(code=2) from None


@app.command("export-deliveries")
def export_deliveries(
    out: Annotated[Path, typer.Option(help="Folder to write deliveries.<format> into.")],
    db: Annotated[
        str | None,
        typer.Option(
            help="Event store: SQLAlchemy URL or SQLite path. Default: $NUDGE_DB_URL, "
            "else $NUDGE_DB_PATH, else nudge_events.db."
        ),
    ] = None,
    fmt: Annotated[FileFormat, typer.Option("--format", help="Table file format.")] = (
        FileFormat.parquet
    ),
    org: Annotated[str | None, typer.Option(help="Only this organisation's decisions.")] = None,
    table_prefix: Annotated[str, typer.Option(help="Event store table prefix.")] = "nudge_",
) -> None:
    """Write served decisions and their events as the `deliveries` table training reads."""
    import os

    from recommender.events import export_deliveries as export

    source = db or os.environ.get("NUDGE_DB_URL") or os.environ.get("NUDGE_DB_PATH")
    with _exit_on_bad_input():
        path = export(
            source or "nudge_events.db", out, fmt=fmt.value, table_prefix=table_prefix, org_id=org
        )
    typer.echo(f"wrote {path}")


@contextmanager
def _exit_on_bad_input() -> Iterator[None]:
    """Turn the errors bad input raises (data, config, arguments) into one message and exit 1."""
    from recommender.config import ConfigError
    from recommender.data import DataValidationError

    try:
        yield
    except DataValidationError as error:
        typer.echo(error.report(), err=True)
        raise typer.Exit(code=1) from None
    except (ConfigError, ValueError, FileExistsError, FileNotFoundError) as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(code=1) from None


def _print_summary(folder: Path, dataset: Dataset) -> None:
    typer.echo(f"OK {folder}")
    for table, frame in dataset.tables().items():
        typer.echo(f"  {table:<13} {len(frame):>9,} rows")
    for note in dataset.notes:
        typer.echo(f"  note: {note.line()}")


def main() -> None:  # pragma: no cover - console entry
    app()
