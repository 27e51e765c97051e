"""The catalogue presented: as plain data, as a terminal table, as the Markdown reference.

``describe`` turns ``tocsin.catalogue`` into plain data (what ``python -m tocsin catalogue
--json`` prints), ``format_table`` lays that out for a terminal, and ``render_markdown`` /
``update_page`` write the reference part of docs/catalogue.md (``python -m tocsin catalogue
--update-page docs/catalogue.md``). The catalogue itself is data only; this is everything
that shows it.
"""

from __future__ import annotations

import textwrap
from collections.abc import Iterable, Sequence
from typing import Final, TypedDict

from tocsin.catalogue import GROUPS, SIGNALS, group_of
from tocsin.dispatcher import Signal


class ArgumentDescription(TypedDict):
    """One declared argument as plain data; ``Argument(**description)`` rebuilds it."""

    name: str
    doc: str
    optional: bool


class SignalDescription(TypedDict):
    """One catalogue signal as plain data, ready for ``json.dumps``."""

    name: str
    group: str
    doc: str
    arguments: list[ArgumentDescription]


def _signals_in(group: str | None) -> list[Signal]:
    if group is None:
        return list(SIGNALS.values())
    if group not in GROUPS:
        raise ValueError(f"unknown signal group {group!r}; the groups are: {', '.join(GROUPS)}")
    return [SIGNALS[name] for name in GROUPS[group]]


def _describe_one(signal: Signal) -> SignalDescription:
    specs = signal.argument_specs or ()
    return {
        "name": signal.name or "",
        "group": group_of(signal),
        "doc": signal.doc or "",
        "arguments": [
            {"name": spec.name, "doc": spec.doc, "optional": spec.optional} for spec in specs
        ],
    }


def describe(group: str | None = None) -> list[SignalDescription]:
    """Return every catalogue signal (or those of one group) as plain data, in order.

    Raises ValueError for an unknown group.
    """
    return [_describe_one(signal) for signal in _signals_in(group)]


def _signature(arguments: Iterable[ArgumentDescription]) -> str:
    return ", ".join(f"[{a['name']}]" if a["optional"] else a["name"] for a in arguments)


def _summary(doc: str) -> str:
    """The first sentence of a signal's docstring."""
    first, _, _ = doc.partition(". ")
    return first.rstrip(".") + "."


def _wrap_row(cells: Sequence[str], widths: Sequence[int]) -> list[str]:
    """Lay one table row out over as many lines as its longest wrapped cell needs."""
    wrapped = [
        textwrap.wrap(cell, width) or [""] for cell, width in zip(cells, widths, strict=True)
    ]
    height = max(len(lines) for lines in wrapped)
    lines = []
    for index in range(height):
        parts = [
            (column[index] if index < len(column) else "").ljust(width)
            for column, width in zip(wrapped, widths, strict=True)
        ]
        lines.append("  ".join(parts).rstrip())
    return lines


def format_table(descriptions: Sequence[SignalDescription], width: int = 100) -> str:
    """Lay descriptions out as a plain-text table about ``width`` characters wide.

    Columns: signal, group, arguments (optional ones in brackets) and the first sentence of
    the docstring. Long cells wrap within their column; rows are then set apart by a blank
    line so that each signal still reads as one block.
    """
    header = ("SIGNAL", "GROUP", "ARGUMENTS", "WHEN IT IS SENT")
    rows = [
        (d["name"], d["group"], _signature(d["arguments"]), _summary(d["doc"]))
        for d in descriptions
    ]
    name_width = max(len(cell) for cell in [header[0], *(row[0] for row in rows)])
    group_width = max(len(cell) for cell in [header[1], *(row[1] for row in rows)])
    # The arguments get up to a third of what is left, and the description the rest; below
    # 40 columns of free text the table overflows rather than wrapping into slivers.
    free = max(width - name_width - group_width - 6, 40)
    longest_signature = max(len(cell) for cell in [header[2], *(row[2] for row in rows)])
    arguments_width = min(longest_signature, max(free // 3, 15))
    widths = (name_width, group_width, arguments_width, free - arguments_width)
    blocks = [_wrap_row(row, widths) for row in rows]
    separator = [""] if any(len(block) > 1 for block in blocks) else []
    lines = _wrap_row(header, widths)
    for block in blocks:
        lines += separator + block
    lines += ["", "[name]: optional argument"]
    return "\n".join(lines) + "\n"


_BEGIN: Final = (
    "<!-- BEGIN GENERATED: python -m tocsin catalogue --update-page docs/catalogue.md -->"
)
_END: Final = "<!-- END GENERATED -->"


def _markdown_signal(description: SignalDescription) -> list[str]:
    name = description["name"]
    lines = [f"### `{name}({_signature(description['arguments'])})`", "", description["doc"], ""]
    if description["arguments"]:
        lines += ["| argument | required | meaning |", "| --- | --- | --- |"]
        for argument in description["arguments"]:
            required = "optional" if argument["optional"] else "yes"
            lines.append(f"| `{argument['name']}` | {required} | {argument['doc']} |")
    else:
        lines.append("Sent with no argument besides `sender`.")
    lines.append("")
    return lines


def render_markdown() -> str:
    """Return the generated reference part of docs/catalogue.md, markers included."""
    lines = [_BEGIN, ""]
    for group, names in GROUPS.items():
        lines += [f"## {group}", ""]
        for name in names:
            lines += _markdown_signal(_describe_one(SIGNALS[name]))
    lines.append(_END)
    return "\n".join(lines)


def update_page(page: str) -> str:
    """Return ``page`` with the text between its generated-part markers regenerated.

    Raises ValueError if the page lacks the markers, rather than guessing where they go.
    """
    start = page.find(_BEGIN)
    end = page.find(_END)
    if start == -1 or end < start:
        raise ValueError(f"the page has no generated part; add the lines {_BEGIN} and {_END}")
    return page[:start] + render_markdown() + page[end + len(_END) :]
