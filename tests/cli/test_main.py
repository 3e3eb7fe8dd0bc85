import argparse
import io
import logging
import sys

import pytest

from cirlab import cli
from cirlab.errors import DataError
from cirlab.progress import progress_enabled


def test_help_lists_every_available_command(capsys):
    with pytest.raises(SystemExit) as info:
        cli.main(["--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    for name, _, _ in cli.available_commands():
        assert name in out


@pytest.mark.parametrize("name", [c[0] for c in cli.available_commands()])
def test_every_command_has_help(name, capsys):
    with pytest.raises(SystemExit) as info:
        cli.main([name, "--help"])
    assert info.value.code == 0
    assert "usage: cirlab " + name in capsys.readouterr().out


def test_expected_errors_are_one_line_without_traceback(monkeypatch, capsys):
    def broken(args: argparse.Namespace) -> int:
        raise DataError("/data/cap.dress.val.json", "invalid JSON at line 3 column 1: Expecting value")

    parser = cli.build_parser()
    monkeypatch.setattr(cli, "build_parser", lambda: parser)
    parser.set_defaults(_run=broken)
    assert cli.main([]) == 2
    err = capsys.readouterr().err
    assert err == "cirlab: error: /data/cap.dress.val.json: invalid JSON at line 3 column 1: Expecting value\n"


def test_no_command_prints_help(capsys):
    assert cli.main([]) == 0
    assert "COMMAND" in capsys.readouterr().out


def run_with(monkeypatch, command):
    """``cli.main`` with ``command(args)`` run in place of ``cirlab synth``."""
    parser = cli.build_parser()
    monkeypatch.setattr(cli, "build_parser", lambda: parser)
    subcommands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    subcommands.choices["synth"].set_defaults(_run=command)


def test_a_mistyped_option_shows_the_commands_usage_and_the_closest_option(capsys):
    with pytest.raises(SystemExit) as info:
        cli.main(["train", "--epcohs", "1"])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: cirlab train ")
    assert err.splitlines()[-1] == "cirlab train: error: unrecognized arguments: --epcohs 1 (did you mean --epochs?)"


def test_a_nested_command_shows_its_own_usage(capsys, tmp_path):
    with pytest.raises(SystemExit):
        cli.main(["data", "check", str(tmp_path), "--jsn", "x"])
    err = capsys.readouterr().err
    assert err.startswith("usage: cirlab data check ") and "(did you mean --json?)" in err


def test_an_error_line_is_one_write(monkeypatch):
    writes: list[str] = []

    class Recorder(io.StringIO):
        def write(self, text: str) -> int:
            writes.append(text)
            return len(text)

    def broken(args: argparse.Namespace) -> int:
        raise DataError("/data/img.png", "cannot decode the image")

    run_with(monkeypatch, broken)
    monkeypatch.setattr(sys, "stderr", Recorder())
    assert cli.main(["synth", "--out", "x"]) == 2
    assert writes == ["cirlab: error: /data/img.png: cannot decode the image\n"]


def log_lines(args: argparse.Namespace) -> int:
    logging.getLogger("cirlab.somewhere").info("status line")
    logging.getLogger("cirlab.somewhere").warning("something odd")
    print("the result")
    return 0


def test_status_lines_go_to_stderr_and_results_to_stdout(monkeypatch, capsys):
    run_with(monkeypatch, log_lines)
    assert cli.main(["synth", "--out", "x"]) == 0
    captured = capsys.readouterr()
    assert captured.out == "the result\n"
    assert captured.err == "status line\nwarning: something odd\n"


def test_a_library_that_configures_the_root_logger_does_not_double_the_lines(monkeypatch, capsys):
    def command(args: argparse.Namespace) -> int:
        logging.info("a library's own message")  # gives the root logger a stderr handler, as open_clip's calls do
        return log_lines(args)

    root = logging.getLogger()
    monkeypatch.setattr(root, "handlers", [])
    monkeypatch.setattr(root, "level", root.level)
    run_with(monkeypatch, command)
    try:
        assert cli.main(["synth", "--out", "x"]) == 0
    finally:
        for handler in list(root.handlers):
            root.removeHandler(handler)
    assert capsys.readouterr().err.count("status line") == 1


def test_other_processes_show_warnings_only(monkeypatch, capsys):
    monkeypatch.setenv("RANK", "1")
    run_with(monkeypatch, log_lines)
    assert cli.main(["synth", "--out", "x"]) == 0
    assert capsys.readouterr().err == "warning: something odd\n"


@pytest.mark.parametrize("argv", [["--quiet", "synth", "--out", "x"], ["synth", "--out", "x", "--quiet"],
                                  ["synth", "-q", "--out", "x"]])
def test_quiet_turns_off_progress_and_status_lines(monkeypatch, capsys, argv):
    monkeypatch.setenv("CIRLAB_NO_PROGRESS", "0")
    seen = {}

    def command(args: argparse.Namespace) -> int:
        seen["progress"] = progress_enabled()
        return log_lines(args)

    run_with(monkeypatch, command)
    assert cli.main(argv) == 0
    assert seen == {"progress": False} and progress_enabled()  # restored afterwards
    assert capsys.readouterr().err == "warning: something odd\n"
