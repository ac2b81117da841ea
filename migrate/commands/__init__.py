"""CLI sub-commands that live beside the core ones.

Each module here defines ``register(app: typer.Typer) -> None`` and adds its
commands; ``migrate.cli`` calls every module listed in ``COMMAND_MODULES``.
Keeping them apart keeps ``cli.py`` thin and each command's code in one place.
"""

COMMAND_MODULES = ("serve", "plan", "compare", "cutover", "label")
