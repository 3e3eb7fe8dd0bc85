"""What the doc tests cover: every fenced block and every command of ``README.md`` and ``docs/*.md``."""

from __future__ import annotations

from functools import cache
from pathlib import Path

from tests.docs.adaptations import Rule
from tests.docs.harness import Prepared, prepare
from tests.docs.markdown import Block, Command, block_kind, read_blocks, shell_commands, table_commands

REPO_ROOT = Path(__file__).resolve().parents[2]


class AnyValue(dict):
    """Values for preparing commands before a workspace exists: every ``{name}`` reads ``<name>``."""

    def __missing__(self, key: str) -> str:
        return f"<{key}>"


def pages() -> list[Path]:
    """The README and every page of docs/."""
    return [REPO_ROOT / "README.md", *sorted((REPO_ROOT / "docs").glob("*.md"))]


@cache
def blocks() -> tuple[Block, ...]:
    return tuple(block for page in pages() for block in read_blocks(page, REPO_ROOT))


@cache
def commands() -> tuple[Command, ...]:
    """Every command of a shell block or a README-style command table, page by page in line order."""
    found = [c for block in blocks() if block_kind(block) == "shell" for c in shell_commands(block)]
    found += [c for page in pages() for c in table_commands(page, REPO_ROOT)]
    order = {page.relative_to(REPO_ROOT).as_posix(): n for n, page in enumerate(pages())}
    return tuple(sorted(found, key=lambda c: (order[c.path], c.line)))


def preparation(command: Command) -> Prepared | Rule:
    """``command``'s runnable form, or the rule that excludes it (ValueError when it has neither)."""
    return prepare(command, AnyValue())


def runnable() -> list[Command]:
    """The commands that are run: not excluded, and with a runner (the coverage test reports those without)."""
    found = []
    for command in commands():
        try:
            if isinstance(preparation(command), Prepared):
                found.append(command)
        except ValueError:
            continue
    return found


def runnable_by_page() -> dict[str, list[Command]]:
    by_page: dict[str, list[Command]] = {}
    for command in runnable():
        by_page.setdefault(command.path, []).append(command)
    return by_page


def python_blocks() -> list[Block]:
    return [block for block in blocks() if block_kind(block) == "python"]
