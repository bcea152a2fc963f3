"""`slt pipeline CONFIG`: registered through the `slt_serve.commands` entry-point group."""

from __future__ import annotations

from pathlib import Path

import typer

from slt_training.cli.common import ConfigArg, OverrideOpt, echo_next


def pipeline(
    config: Path = ConfigArg,
    until: str = typer.Option(
        None, help="Stop after this stage: prepare, s2g, features, g2t, s2t, export, evaluate."
    ),
    override: list[str] = OverrideOpt,
) -> None:
    """Run every stage in order: prepare → S2G → features → G2T → S2T → export → evaluate.

    A finished stage is skipped, an interrupted one resumes: run the same command again
    after a crash or on a fresh notebook. Several GPUs: `accelerate launch -m slt_serve.cli
    pipeline CONFIG`.
    """
    import logging

    from rich.console import Console
    from rich.table import Table

    from slt_pipeline.plan import load_plan
    from slt_pipeline.results import (
        RESULTS_JSON,
        RESULTS_MD,
        TABLE_HEADER,
        bundle_lines,
        result_rows,
    )
    from slt_pipeline.runner import Pipeline

    plan = load_plan(config, override or [])
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    say = lambda line: typer.secho(f"[pipeline] {line}", bold=True)  # noqa: E731
    results = Pipeline(plan, say=say).run(until)
    if not results:
        return
    table = Table(*TABLE_HEADER)
    for row in result_rows(results):
        table.add_row(*row)
    Console().print(table)
    for line in bundle_lines(results):
        typer.echo(line)
    typer.echo(f"results in {plan.run_dir}/{RESULTS_JSON} and {RESULTS_MD}")
    if plan.config.export.enabled:
        echo_next(
            f"slt serve {plan.bundle_dir}   or   slt translate VIDEOS --bundle {plan.bundle_dir}"
        )


def register(root: typer.Typer) -> None:
    """Entry point (group `slt_serve.commands`): add `slt pipeline`."""
    root.command("pipeline")(pipeline)
