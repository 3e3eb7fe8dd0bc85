"""Every command block of README.md and docs/*.md runs, on tiny data with the sizes overridden.

How a command is adapted (placeholders, tiny models, sizes, exclusions) is listed in
:mod:`tests.docs.adaptations`; the workspace and fixtures it runs in are described in
:mod:`tests.docs.harness`. The coverage tests below fail on a block or command that is neither run
nor excluded for a stated reason, and on a table row that no longer matches anything in the docs.
"""

from __future__ import annotations

import contextlib
import io
import re
from typing import Any

import pytest

from cirlab.cli import main
from tests.docs import adaptations
from tests.docs.adaptations import Override, PythonEdit, Rule
from tests.docs.catalogue import blocks, commands, preparation, python_blocks, runnable
from tests.docs.harness import Outcome, Prepared, Workspace, curl_available
from tests.docs.markdown import Block, Command, block_kind, usage_synopses

FLAG = re.compile(r"(?<![\w-])(--?[a-zA-Z][\w-]*)")


def _command_param(command: Command) -> Any:
    prepared = preparation(command)
    assert isinstance(prepared, Prepared)
    name = f"cirlab-{prepared.argv[0]}" if prepared.cirlab_args else prepared.program
    if prepared.program == "torchrun":
        name = f"torchrun-{name}"
    marks = {"serve": [pytest.mark.slow], "torchrun": [pytest.mark.slow, pytest.mark.distributed]}
    return pytest.param(command, id=f"{command.where}:{name}", marks=marks.get(prepared.program, []))


def _failure(command: Command, prepared: Prepared, outcome: Outcome) -> str:
    lines = (outcome.stderr or outcome.stdout).strip().splitlines()
    errors = list(dict.fromkeys(line for line in lines if "error" in line.lower()))[:6]
    return "\n".join([f"{command.where}: `{command.text}` failed (exit {outcome.returncode})",
                      f"ran: {prepared.display()}", *errors, "...", *lines[-8:]])


@pytest.mark.parametrize("command", [_command_param(c) for c in runnable()])
def test_documented_command_runs(workspace: Workspace, command: Command) -> None:
    if command.argv[0] == "curl" and not curl_available():
        pytest.skip("curl is not installed")
    prepared, outcome = workspace.run(command)
    assert outcome.returncode == 0, _failure(command, prepared, outcome)
    args = prepared.cirlab_args
    if "--out" in args:
        out = args[max(n for n, arg in enumerate(args) if arg == "--out") + 1]  # the last one wins
        assert (workspace.root / out).exists(), f"{command.where}: `{command.text}` did not write {out}"


@pytest.mark.parametrize("block", [pytest.param(b, id=b.where) for b in python_blocks()
                                   if not adaptations.python_exclusion(b.path, b.text)])
def test_documented_python_runs(workspace: Workspace, block: Block) -> None:
    workspace.run_python(block)


def _synopses() -> list[Any]:
    usage = [block for block in blocks() if block_kind(block) == "usage"]
    found = [(block.where, text) for block in usage for text in usage_synopses(block)]
    found += [(c.where, " ".join(c.argv)) for c in commands() if c.source == "table"]
    return [pytest.param(text, id=f"{where}:{text.split()[1]}") for where, text in found]


def _help(words: list[str]) -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out), pytest.raises(SystemExit) as stop:
        main([*words, "--help"])
    assert stop.value.code == 0, f"`cirlab {' '.join(words)} --help` failed"
    return out.getvalue()


@pytest.mark.parametrize("synopsis", _synopses())
def test_documented_synopsis_names_real_options(synopsis: str) -> None:
    """A synopsis (``cirlab index --features DIR [--kind flat|ivf]``) names only options its command has."""
    words = []
    for word in synopsis.split()[1:]:
        if not re.fullmatch(r"[a-z]+", word):
            break
        words.append(word)
    help_text = _help(words)
    unknown = [flag for flag in FLAG.findall(synopsis)
               if not re.search(r"(?<![\w-])" + re.escape(flag) + r"(?![\w-])", help_text)]
    assert not unknown, f"`{synopsis}`: `cirlab {' '.join(words)}` has no option {', '.join(unknown)}"


def test_every_block_is_run_or_excluded() -> None:
    """Each fenced block is run, checked as a synopsis, or of a kind with nothing to run; each command has a runner
    or an exclusion rule."""
    problems = [f"{b.where}: a ```{b.language} block the doc tests do not know how to handle"
                for b in blocks() if block_kind(b) == "unknown"]
    for command in commands():
        try:
            preparation(command)
        except ValueError as exc:
            problems.append(str(exc))
    assert not problems, "\n".join(problems)


def test_every_adaptation_matches_the_docs() -> None:
    """No row of the adaptation tables is stale: each one still changes or excludes something in the docs."""
    prepared = [preparation(c) for c in commands()]
    applied = {id(rule) for p in prepared if isinstance(p, Prepared) for rule in p.applied}
    applied |= {id(p) for p in prepared if isinstance(p, Rule)}
    texts = [c.text for c in commands()] + [b.text for b in python_blocks()]
    stale: list[str] = [f"substitution {s.doc!r}" for s in adaptations.SUBSTITUTIONS
                        if not any(s.pattern().search(text) for text in texts)]
    rules: list[Override | Rule] = [*adaptations.OVERRIDES, *adaptations.WRAPPERS, *adaptations.EXCLUDED]
    stale += [f"{type(r).__name__.lower()} {r}" for r in rules if id(r) not in applied]
    edits: list[PythonEdit] = [*adaptations.PYTHON_EDITS, *adaptations.PYTHON_EXCLUDED]
    stale += [f"python edit {e.path}: {e.doc!r}" for e in edits
              if not any(b.path == e.path and e.doc in b.text for b in python_blocks())]
    assert not stale, "rows that match nothing in the docs any more:\n" + "\n".join(stale)
