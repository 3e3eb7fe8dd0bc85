"""Reading the documentation's code: fenced blocks, the commands in them, and commands in table cells.

A fence (```` ```bash ````, ```` ``` ````, ...) opens a :class:`Block` of a language ("" when none is named).
:func:`block_kind` sorts a block into what the doc tests do with it:

* ``shell``: a ``bash``/``sh``/``shell``/``console`` block, or an unnamed block holding a ``$ `` prompt
  (a transcript): its commands are run;
* ``usage``: an unnamed block that starts with ``cirlab <command>``, a synopsis with metavariables
  and ``[optional]`` parts: its options are checked against the command's ``--help``;
* ``python``: run, or excluded with a reason;
* ``data``: a ``json`` block (a request or response body);
* ``text``: an unnamed block with no command line (a file layout, a diagram, printed output);
* anything else is ``unknown``, which the coverage test refuses.

:func:`shell_commands` turns a shell block into :class:`Command` s: backslash continuations are joined,
comments dropped, and in a transcript only the ``$ `` lines (with their continuations) count, the rest
being printed output. :func:`table_commands` finds table cells that hold exactly one backticked
``cirlab`` command, as the README's command table does.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from pathlib import Path

SHELL_LANGUAGES = frozenset({"bash", "sh", "shell", "console"})
#: A line that runs something, as the first word of a line in an unnamed block.
COMMAND_LINE = re.compile(r"^(\$ |cirlab [a-z]+(\s|$)|torchrun |python3? |pip |curl |\.venv/|\./)")
USAGE_LINE = re.compile(r"^cirlab [a-z]+(\s|$)")
FENCE = re.compile(r"^(`{3,}|~{3,})\s*([\w+-]*)\s*$")
TABLE_COMMAND = re.compile(r"^`(cirlab [^`]+)`$")


@dataclass(frozen=True)
class Block:
    """A fenced block: the file (relative to the repository), the line of its opening fence, its language."""

    path: str
    line: int
    language: str
    text: str

    @property
    def where(self) -> str:
        return f"{self.path}:{self.line}"

    @property
    def first_line(self) -> str:
        return next((line.strip() for line in self.text.splitlines() if line.strip()), "")


@dataclass(frozen=True)
class Command:
    """One command of the documentation, as a user would type it (comments dropped, continuations joined)."""

    path: str
    line: int
    argv: tuple[str, ...]
    source: str  # "block" (a fenced block) or "table" (a table cell of the README)

    @property
    def text(self) -> str:
        return shlex.join(self.argv)

    @property
    def where(self) -> str:
        return f"{self.path}:{self.line}"


def read_blocks(path: Path, root: Path) -> list[Block]:
    """Every fenced block of the Markdown file ``path``; a fence left open is an error."""
    blocks: list[Block] = []
    opening: tuple[int, str, str] | None = None  # (line, fence, language)
    body: list[str] = []
    relative = path.relative_to(root).as_posix()
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        match = FENCE.match(line.strip())
        if opening is None and match:
            opening, body = (number, match.group(1), match.group(2).lower()), []
        elif opening is not None and match and match.group(1) == opening[1] and not match.group(2):
            blocks.append(Block(relative, opening[0], opening[2], "\n".join(body)))
            opening = None
        elif opening is not None:
            body.append(line)
    if opening is not None:
        raise ValueError(f"{relative}:{opening[0]}: a fenced block is never closed")
    return blocks


def block_kind(block: Block) -> str:
    """``shell``, ``usage``, ``python``, ``data``, ``text`` or ``unknown`` (see the module docstring)."""
    lines = [line.strip() for line in block.text.splitlines() if line.strip()]
    if block.language in SHELL_LANGUAGES:
        return "shell"
    if block.language == "python":
        return "python"
    if block.language == "json":
        return "data"
    if block.language:
        return "unknown"
    if any(line.startswith("$ ") for line in lines):
        return "shell"
    if lines and USAGE_LINE.match(lines[0]):
        return "usage"
    return "unknown" if any(COMMAND_LINE.match(line) for line in lines) else "text"


def shell_commands(block: Block) -> list[Command]:
    """The commands of a shell block, in order (see the module docstring)."""
    transcript = any(line.lstrip().startswith("$ ") for line in block.text.splitlines())
    commands: list[Command] = []
    pending: list[str] = []
    start = 0
    for offset, raw in enumerate(block.text.splitlines()):
        line = raw.strip()
        if not pending:
            if transcript and not line.startswith("$ "):
                continue  # printed output
            line = line[2:] if transcript else line
            start = block.line + 1 + offset
        continued = line.endswith("\\")
        pending.append(line[:-1] if continued else line)
        if not continued:
            argv = tuple(shlex.split(" ".join(pending), comments=True))
            if argv:
                commands.append(Command(block.path, start, argv, "block"))
            pending = []
    if pending:
        raise ValueError(f"{block.where}: the block ends inside a continued line")
    return commands


def usage_synopses(block: Block) -> list[str]:
    """The synopses of a usage block: each starts at a ``cirlab <command>`` line; indented lines continue it."""
    synopses: list[str] = []
    for line in block.text.splitlines():
        if USAGE_LINE.match(line.strip()) and not line.startswith(" "):
            synopses.append(line.strip())
        elif line.strip() and synopses:
            synopses[-1] += " " + line.strip()
    return synopses


def table_cells(line: str) -> list[str]:
    """The cells of a table row; a ``|`` inside a code span or escaped as ``\\|`` does not end a cell."""
    cells, current, in_code, previous = [], "", False, ""
    for char in line.strip().strip("|"):
        if char == "`":
            in_code = not in_code
        if char == "|" and not in_code and previous != "\\":
            cells.append(current.strip())
            current = ""
        else:
            current += char
        previous = char
    cells.append(current.strip())
    return [cell.replace("\\|", "|") for cell in cells]


def table_commands(path: Path, root: Path) -> list[Command]:
    """Table cells of ``path`` that hold exactly one backticked ``cirlab`` command, outside fenced blocks."""
    commands: list[Command] = []
    fenced = False
    relative = path.relative_to(root).as_posix()
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if FENCE.match(line.strip()):
            fenced = not fenced
        if fenced or not line.lstrip().startswith("|"):
            continue
        for cell in table_cells(line):
            match = TABLE_COMMAND.match(cell)
            if match:
                commands.append(Command(relative, number, tuple(shlex.split(match.group(1))), "table"))
    return commands
