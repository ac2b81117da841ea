"""Tables on the terminal that never split a name.

Columns are either *names* (model names, codes, numbers: never wrapped) or *prose*
(messages, reasons: wrapped at spaces). On a terminal, tables use its full width; when
the terminal is too narrow for the names plus a readable prose column, each row is shown
as a block of ``label: value`` lines instead. When the output is piped or redirected,
nothing is wrapped at all (one line per row), whatever the width a terminal would have.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from rich.console import Console
from rich.table import Table
from rich.text import Text

#: Narrowest width a prose column may get before the table is shown as blocks instead.
MIN_PROSE_WIDTH = 16


@dataclass(frozen=True)
class Column:
    header: str
    prose: bool = False  # wrap at spaces (True) or never wrap (False)


def table_console(console: Console | None = None) -> Console:
    """``console`` or a new one; when not writing to a terminal, one too wide to wrap anything."""
    console = console or Console()
    if console.is_terminal:
        return console
    return Console(file=console.file, width=100_000, soft_wrap=True, highlight=False, color_system=None)


def _width(cell: str) -> int:
    return max((Text.from_markup(line).cell_len for line in cell.splitlines()), default=0)


def _needed(columns: Sequence[Column], rows: Sequence[Sequence[str]]) -> int:
    """Width a table needs: names at full width, prose at ``MIN_PROSE_WIDTH``, plus borders."""
    total = 1
    for i, col in enumerate(columns):
        widest = max([_width(col.header)] + [_width(r[i]) for r in rows])
        total += (min(widest, MIN_PROSE_WIDTH) if col.prose else widest) + 3
    return total


def show_table(console: Console, title: str, columns: Sequence[Column], rows: Sequence[Sequence[str]], *,
               show_header: bool = True) -> None:
    """Print ``rows`` as a table, or as blocks of ``label: value`` lines on a narrow terminal."""
    if console.is_terminal and console.width < _needed(columns, rows):
        console.print(f"[bold]{title}[/]")
        for row in rows:
            if not show_header:  # a key/value table: one "key: value" line per row
                console.print(f"{row[0]}: {' '.join(row[1:])}", overflow="fold", highlight=False)
                continue
            for i, (col, cell) in enumerate(zip(columns, row)):
                if cell or not i:
                    console.print(f"{'  ' if i else '- '}{col.header}: {cell}", overflow="fold", highlight=False)
        return
    table = Table(title=title, show_header=show_header)
    for col in columns:
        if col.prose:
            table.add_column(col.header, overflow="fold")
        else:
            table.add_column(col.header, no_wrap=True)
    for row in rows:
        table.add_row(*row)
    console.print(table)
