"""``cirlab extract``: the cache's summary on stdout, status lines on stderr."""

from __future__ import annotations

from cirlab.cli import main
from tests.features.datasets import make_dataset


def test_summary_on_stdout_and_status_on_stderr(tmp_path, capsys):
    data = make_dataset(tmp_path / "data", images_per_split=1)
    command = ["extract", "--data", str(data), "--out", str(tmp_path / "cache"), "--model", "cirlab-vit-tiny",
               "--workers", "0", "--categories", "dress", "--batch-size", "4"]
    assert main(command) == 0
    first = capsys.readouterr()
    assert first.out.count("\n") == 1 and first.err == ""
    assert main(command) == 0  # nothing to do: said on stderr, the summary again on stdout
    again = capsys.readouterr()
    assert again.out.count("\n") == 1 and again.out.split(" ")[0] == first.out.split(" ")[0]
    assert again.err == f"{tmp_path / 'cache'}: feature cache is up to date; nothing to do\n"
