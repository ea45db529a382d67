"""Plain-text tables with aligned columns, for the status command and the live view."""

from collections.abc import Collection, Sequence


def format_table(header: Sequence[str], rows: Sequence[Sequence[str]],
                 right_aligned: Collection[int] = ()) -> list[str]:
    """The header and each row as one line; columns in `right_aligned` (numbers) align right."""
    widths = [max(len(line[column]) for line in (header, *rows)) for column in range(len(header))]
    lines = []
    for line in (header, *rows):
        cells = [cell.rjust(width) if column in right_aligned else cell.ljust(width)
                 for column, (cell, width) in enumerate(zip(line, widths))]
        lines.append("  ".join(cells).rstrip())
    return lines
