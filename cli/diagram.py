"""``lifecycle diagram``: the lifecycle drawn from the machine class."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from cli import LazyModule, fail, main, os_failure

if TYPE_CHECKING:
    from statemachines import docs
else:
    docs = LazyModule("statemachines.docs")


@main.command("diagram")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["mermaid", "md", "svg"]),
    default="mermaid",
    show_default=True,
)
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write to this file instead of stdout.",
)
def diagram(fmt: str, output: Path | None) -> None:
    """Print the lifecycle diagram (Mermaid), the whole docs page (md) or an SVG."""
    try:
        text = {"mermaid": docs.mermaid, "md": docs.lifecycle_markdown, "svg": docs.svg}[fmt]()
    except docs.GraphvizMissing as error:
        fail(str(error))
    if output is None:
        click.echo(text, nl=not text.endswith("\n"))
        return
    try:
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(text)
    except OSError as error:
        fail(f"cannot write {output}: {os_failure(error)}")
    click.echo(f"wrote {output}", err=True)
