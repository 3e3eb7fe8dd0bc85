import argparse

import pytest

from cirlab import cli
from cirlab.errors import DataError


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
