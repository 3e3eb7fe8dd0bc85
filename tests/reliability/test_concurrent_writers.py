"""Two writers of one feature cache, run folder or index never mix their work: the second is refused at once.

The first writer is a real ``extract`` or ``train`` in a child process, paused at an exact point (after its
first chunk, after its first epoch) on a pipe the test controls; the second is the ``cirlab`` command run in
this process. Nothing here waits on time: every step is ordered by the pipes.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from cirlab.cli import main
from cirlab.encoders import EncoderSpec
from cirlab.features import FeatureCache
from cirlab.features.extract import extract_features
from cirlab.locking import LOCK_FILE, FolderLockedError
from tests.features.datasets import make_dataset
from tests.reliability.holders import LockHolder
from tests.training.fixtures import make_learnable_cache

#: Runs ``work`` (Python source) with ``pause()`` available: it says "paused" and waits for a line on stdin.
CHILD = textwrap.dedent('''
    import json, sys
    import torch
    torch.set_num_threads(1)
    args = json.loads(sys.argv[1])

    def pause():
        print("paused", flush=True)
        sys.stdin.readline()

    exec(args["work"], {"args": args, "pause": pause})
    print("done", flush=True)
''')

EXTRACT = textwrap.dedent('''
    from cirlab.encoders import EncoderSpec
    from cirlab.features.extract import extract_features
    extract_features(args["data"], EncoderSpec(model="cirlab-vit-tiny", pretrained=None), args["out"], chunk_size=4,
                     batch_size=4, device="cpu",
                     on_chunk=lambda kind, index: pause() if (kind, index) == ("images", 0) else None)
''')

TRAIN = textwrap.dedent('''
    from cirlab.training import load_config, train
    train(load_config(None, args["config"]), on_epoch_end=lambda record: pause() if record["epoch"] == 1 else None)
''')


class PausedWriter:
    """A child process doing ``work`` that has reached its ``pause()``."""

    def __init__(self, work: str, **args: object) -> None:
        payload = json.dumps({"work": work, **{k: str(v) if isinstance(v, Path) else v for k, v in args.items()}})
        self.process = subprocess.Popen([sys.executable, "-c", CHILD, payload], stdin=subprocess.PIPE,
                                        stdout=subprocess.PIPE, text=True)
        line = self.process.stdout.readline().strip()
        assert line == "paused", (line, self.process.wait(), self.process.stderr)

    def finish(self) -> None:
        """Let the work go on to its end; it must succeed."""
        self.process.stdin.write("\n")
        self.process.stdin.close()
        assert self.process.stdout.read().strip() == "done"
        assert self.process.wait(timeout=600) == 0


def refused(argv: list[str], folder: Path, pid: int, capsys: pytest.CaptureFixture) -> None:
    """``cirlab ARGV`` exits with 2 and one line saying that process ``pid`` writes ``folder``."""
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"cirlab: error: {folder}: another cirlab process (pid {pid} on host ") and \
        err.endswith("is writing here; wait for it or choose another folder\n") and err.count("\n") == 1, err


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_dataset(tmp_path_factory.mktemp("concurrent") / "data", images_per_split=2)


@pytest.fixture(scope="module")
def features(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_learnable_cache(tmp_path_factory.mktemp("concurrent-cache") / "features",
                                images={"train": 30, "val": 20})


def test_a_second_extraction_into_a_cache_being_written_is_refused(data, tmp_path, capsys) -> None:
    """The mixed cache: a second `cirlab extract` with another model, while the first has chunks on disk."""
    out = tmp_path / "cache"
    first = PausedWriter(EXTRACT, data=data, out=out)
    chunks = sorted(p.name for p in (out / ".partial").iterdir())
    for flags in ([], ["--overwrite"]):
        refused(["extract", "--data", str(data), "--out", str(out), "--model", "cirlab-rn-tiny", "--workers", "0",
                 "--chunk-size", "4", *flags], out, first.process.pid, capsys)
    assert sorted(p.name for p in (out / ".partial").iterdir()) == chunks  # the refused one touched nothing
    first.finish()
    cache = FeatureCache.open(out)
    alone = extract_features(data, EncoderSpec(model="cirlab-vit-tiny", pretrained=None), tmp_path / "alone",
                             chunk_size=4, batch_size=4, device="cpu")
    assert cache.manifest["model"] == "cirlab-vit-tiny" and cache.manifest["weights_hash"] == \
        alone.manifest["weights_hash"]
    assert np.array_equal(cache.image_features, alone.image_features)
    assert np.array_equal(cache.text_features, alone.text_features)
    assert not (out / LOCK_FILE).exists()


def test_a_second_training_into_a_run_folder_being_written_is_refused(features, tmp_path, capsys) -> None:
    """Both used to exit 0 and print "complete"; the folder held whichever finished last."""
    out = tmp_path / "run"
    config = {"features": str(features), "out": str(out), "combiner": "sum", "loss": "triplet",
              "negatives": "random", "num_negatives": 2, "epochs": 2, "batch_size": 16, "lr": 0.1,
              "tensorboard": False, "seed": 0}
    first = PausedWriter(TRAIN, config=config)
    metrics = (out / "metrics.json").read_bytes()
    second = ["train", "--features", str(features), "--out", str(out), "--combiner", "sum", "--loss", "triplet",
              "--negatives", "hard", "--num-negatives", "2", "--epochs", "3", "--batch-size", "16",
              "--no-tensorboard"]
    refused(second, out, first.process.pid, capsys)
    refused(["train", "--resume", "--out", str(out)], out, first.process.pid, capsys)
    assert (out / "metrics.json").read_bytes() == metrics
    first.finish()
    result = json.loads((out / "metrics.json").read_text())
    assert result["status"] == "complete" and result["epochs_completed"] == 2
    assert result["config"]["negatives"] == "random"
    assert main(["train", "--resume", "--out", str(out), "--epochs", "3", "--no-tensorboard"]) == 0  # free again


def test_an_index_build_into_a_locked_folder_is_refused_until_its_holder_is_gone(features, tmp_path,
                                                                                 capsys) -> None:
    out = tmp_path / "index"
    with LockHolder(out) as holder:
        refused(["index", "--features", str(features), "--out", str(out)], out, holder.pid, capsys)
        assert [p.name for p in out.iterdir()] == [LOCK_FILE]
        holder.kill()  # its lock file stays behind, and must not block
    assert (out / LOCK_FILE).exists()
    assert main(["index", "--features", str(features), "--out", str(out)]) == 0
    assert (out / "index.faiss").is_file() and not (out / LOCK_FILE).exists()


@pytest.mark.parametrize("command", ["pretrain", "finetune"])
def test_encoder_training_into_a_locked_run_folder_is_refused(data, tmp_path, command) -> None:
    from cirlab.encoder_training.finetuning import finetune
    from cirlab.encoder_training.pretraining import pretrain

    run = pretrain if command == "pretrain" else finetune
    options = {"model": "cirlab-vit-tiny", "pretrained": None, "epochs": 1, "batch_size": 4, "num_workers": 0,
               "tensorboard": False}
    with LockHolder(tmp_path / "run") as holder, pytest.raises(FolderLockedError, match=f"pid {holder.pid} "):
        run(data, tmp_path / "run", **options)
