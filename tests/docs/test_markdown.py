"""Reading blocks and commands out of Markdown: continuations, comments, transcripts, synopses and tables."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.docs.markdown import Block, block_kind, read_blocks, shell_commands, table_commands, usage_synopses


def block(text: str, language: str = "bash") -> Block:
    return Block("docs/page.md", 10, language, text)


def test_continuations_are_joined_and_comments_dropped() -> None:
    commands = shell_commands(block('cirlab train --out "runs/a b" \\\n    --epochs 3   # three\n'
                                    "# a whole-line comment\n\ncirlab eval --out r.json"))
    assert [c.argv for c in commands] == [("cirlab", "train", "--out", "runs/a b", "--epochs", "3"),
                                          ("cirlab", "eval", "--out", "r.json")]
    assert [c.line for c in commands] == [11, 15]  # the fence is line 10


def test_a_transcript_runs_its_prompt_lines_and_skips_the_printed_output() -> None:
    transcript = block('$ cirlab search --index i \\\n    --text "is red" -k 5\nrank  id\n   1  B05P2XJSAG', "")
    assert block_kind(transcript) == "shell"
    assert [c.argv for c in shell_commands(transcript)] == [
        ("cirlab", "search", "--index", "i", "--text", "is red", "-k", "5")]


def test_a_block_ending_inside_a_continued_line_is_refused() -> None:
    with pytest.raises(ValueError, match="continued line"):
        shell_commands(block("cirlab train \\"))


@pytest.mark.parametrize(("language", "text", "kind"), [
    ("bash", "cirlab demo", "shell"),
    ("console", "cirlab demo", "shell"),
    ("python", "print(1)", "python"),
    ("json", "{}", "data"),
    ("", "cirlab index --features DIR [--kind flat|ivf]", "usage"),
    ("", "OUT/images/<id>.png   one PNG per image", "text"),
    ("", "cirlab bench: device cpu, 2 CPUs", "text"),  # printed output, not a command
    ("", "torchrun --nproc_per_node 2 -m cirlab train", "unknown"),  # a command in an unnamed block
    ("yaml", "epochs: 3", "unknown"),
])
def test_block_kinds(language: str, text: str, kind: str) -> None:
    assert block_kind(block(text, language)) == kind


def test_a_synopsis_continues_on_indented_lines() -> None:
    synopses = usage_synopses(block("cirlab index --features DIR --out INDEX_DIR\n"
                                    "             [--kind flat|ivf] [--nlist N]\ncirlab search --index INDEX", ""))
    assert synopses == ["cirlab index --features DIR --out INDEX_DIR [--kind flat|ivf] [--nlist N]",
                        "cirlab search --index INDEX"]


def test_blocks_keep_their_fence_line_and_language(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text("# Title\n\n```bash\ncirlab demo\n```\n\ntext\n\n```\nlayout\n```\n", encoding="utf-8")
    found = read_blocks(page, tmp_path)
    assert [(b.path, b.line, b.language, b.text) for b in found] == [("page.md", 3, "bash", "cirlab demo"),
                                                                    ("page.md", 9, "", "layout")]


def test_a_fence_left_open_is_an_error(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text("```bash\ncirlab demo\n", encoding="utf-8")
    with pytest.raises(ValueError, match="page.md:1: a fenced block is never closed"):
        read_blocks(page, tmp_path)


def test_table_cells_holding_one_command_are_commands(tmp_path: Path) -> None:
    page = tmp_path / "README.md"
    page.write_text("| step | command |\n|---|---|\n"
                    "| make data | `cirlab synth --out DATA [--preset default|tiny]` |\n"
                    "| escaped | `cirlab bench --only a\\|b` |\n"
                    "| prose | `cirlab synth`, preset `default` |\n", encoding="utf-8")
    commands = table_commands(page, tmp_path)
    assert [(c.line, c.argv, c.source) for c in commands] == [
        (3, ("cirlab", "synth", "--out", "DATA", "[--preset", "default|tiny]"), "table"),
        (4, ("cirlab", "bench", "--only", "a|b"), "table"),
    ]
