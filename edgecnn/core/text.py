"""Plain-text and Markdown tables for the terminal and the docs, shared by the CLI, the reports and the tools
(standard library only)."""

from __future__ import annotations

from collections.abc import Sequence


def text_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """Left-aligned columns two spaces apart, a dashed rule under the headers, no trailing spaces."""
    widths = [max(len(str(x)) for x in col) for col in zip(headers, *rows)]

    def line(cells: Sequence[object]) -> str:
        return "  ".join(str(c).ljust(w) for c, w in zip(cells, widths)).rstrip()

    return "\n".join([line(headers), line(["-" * w for w in widths]), *(line(r) for r in rows)])


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[object]], text_columns: int = 1) -> list[str]:
    """A Markdown table as lines: the first ``text_columns`` columns left-aligned, the numbers after them right."""
    rule = "|" + "---|" * text_columns + "---:|" * (len(headers) - text_columns)
    return ["| " + " | ".join(headers) + " |", rule, *("| " + " | ".join(map(str, r)) + " |" for r in rows)]
