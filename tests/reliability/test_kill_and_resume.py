"""Processes killed with SIGKILL at exact code points resume to the same result as an uninterrupted run.

Each case runs the work in a child process whose test-only wrapper kills it (``os.kill(os.getpid(), SIGKILL)``,
no clean-up, no ``finally``) when a given function is called for the N-th time: the point is exact, whatever the
machine's speed. Then the work is run again (resumed) in a fresh process and its outputs are compared with those
of an uninterrupted run: weights, metrics, logs and ranks for training; every array for extraction; the index
for ``cirlab index``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from cirlab.engine.runlog import read_csv
from tests.training.fixtures import make_learnable_cache

pytestmark = pytest.mark.slow

#: Runs ``work`` (Python source using ``args``) after arranging that the ``count``-th call of ``module.name``
#: kills the process; exits 0 if the work finishes without reaching that call.
CHILD = textwrap.dedent('''
    import importlib, json, os, signal, sys
    args = json.loads(sys.argv[1])
    if args["kill"]:
        module_name, attribute = args["kill"]["target"].rsplit(".", 1)
        owner_name, _, method = attribute.partition(":")
        module = importlib.import_module(module_name)
        owner = getattr(module, owner_name) if method else module
        name = method or owner_name
        original = getattr(owner, name)
        calls = {"n": 0}

        def killer(*a, **k):
            calls["n"] += 1
            if calls["n"] == args["kill"]["count"] and args["kill"].get("after"):
                result = original(*a, **k)
                os.kill(os.getpid(), signal.SIGKILL)
                return result
            if calls["n"] == args["kill"]["count"]:
                os.kill(os.getpid(), signal.SIGKILL)
            return original(*a, **k)

        setattr(owner, name, killer)
    exec(args["work"], {"args": args})
''')

TRAIN = textwrap.dedent('''
    import torch
    torch.set_num_threads(1)
    from cirlab.training import load_config, train
    train(load_config(None, args["config"]))
''')

EXTRACT = textwrap.dedent('''
    import torch
    torch.set_num_threads(1)
    from cirlab.encoders import EncoderSpec
    from cirlab.features.extract import extract_features
    extract_features(args["data"], EncoderSpec(model="cirlab-vit-tiny", pretrained=None, seed=0), args["out"],
                     chunk_size=4, batch_size=4, device="cpu")
''')

INDEX = textwrap.dedent('''
    from cirlab.search.build import build_index
    build_index(args["features"], args["out"])
''')


def run_child(work: str, kill: dict | None = None, **args) -> subprocess.CompletedProcess:
    payload = json.dumps({"work": work, "kill": kill, **{k: str(v) if isinstance(v, Path) else v
                                                        for k, v in args.items()}})
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "CIRLAB_NO_PROGRESS": "1", "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-c", CHILD, payload], capture_output=True, text=True, timeout=600,
                          env=env)


def killed(result: subprocess.CompletedProcess) -> bool:
    return result.returncode == -signal.SIGKILL


# ------------------------------------------------------------------------------------------ training
@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    return make_learnable_cache(tmp_path_factory.mktemp("kill") / "features", images={"train": 40, "val": 24})


def config(cache: Path, out: Path, **changes) -> dict:
    return {"features": str(cache), "out": str(out), "combiner": "combiner", "loss": "triplet", "negatives": "hard",
            "num_negatives": 4, "epochs": 3, "batch_size": 16, "lr": 3e-3, "tensorboard": False, "seed": 3,
            "combiner_options": {"projection_dim": 32, "hidden_dim": 64, "dropout": 0.1},
            "loss_options": {"margin": 0.2}, **changes}


@pytest.fixture(scope="module")
def uninterrupted(cache, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("whole") / "run"
    done = run_child(TRAIN, config=config(cache, out))
    assert done.returncode == 0, done.stderr[-2000:]
    return out


def assert_same_run(a: Path, b: Path) -> None:
    for folder in ("best", "last"):
        wa, wb = (load_file(str(d / folder / "combiner.safetensors")) for d in (a, b))
        assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa), folder
    ma, mb = (json.loads((d / "metrics.json").read_text()) for d in (a, b))

    def stable(history):
        return [{k: v for k, v in r.items() if not k.startswith("time/")} for r in history]

    assert ma["status"] == mb["status"] == "complete" and stable(ma["history"]) == stable(mb["history"])
    sa, sb = ([{k: v for k, v in row.items() if not k.endswith("_time_s")} for row in read_csv(d / "steps.csv")]
              for d in (a, b))
    assert sa == sb and len(sa) == 30  # every step logged once, with the same values (times aside)
    ra, rb = (np.load(d / "ranks.npz") for d in (a, b))
    assert sorted(ra.files) == sorted(rb.files) and all(np.array_equal(ra[k], rb[k]) for k in ra.files)


@pytest.mark.parametrize(("target", "count", "after"), [
    ("cirlab.engine.loop.Engine:_train_step", 14, False),  # mid-epoch 2 (10 steps per epoch)
    ("cirlab.engine.loop.write_checkpoint_folder", 3, True),  # right after an epoch's last/ was swapped in
    ("os.replace", 6, False),  # at the 6th file rename: amid the first epoch's logs and checkpoint
    ("cirlab.engine.runlog.RunLog:write_summary", 3, False),  # before an epoch's logs are written
])
def test_a_training_run_killed_anywhere_resumes_to_the_uninterrupted_result(cache, uninterrupted, tmp_path, target,
                                                                          count, after):
    out = tmp_path / "run"
    first = run_child(TRAIN, {"target": target, "count": count, "after": after}, config=config(cache, out))
    assert killed(first), (first.returncode, first.stderr[-2000:])
    resumed = run_child(TRAIN, config=config(cache, out, resume=True))
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert_same_run(uninterrupted, out)


# ------------------------------------------------------------------------------------------ extraction
@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    from cirlab.synth import generate
    from cirlab.synth.config import SynthConfig

    root = tmp_path_factory.mktemp("kill-data") / "data"
    generate(root, SynthConfig.preset("tiny"), show_progress=False)
    return root


@pytest.mark.parametrize(("target", "count", "after"), [
    ("cirlab.features.partial.PartialResults:write_images", 3, True),  # after three chunks were kept
    ("cirlab.features.extract.write_cache", 1, False),  # every chunk done, the cache not yet written
])
def test_an_extraction_killed_anywhere_resumes_to_the_same_cache(data, tmp_path, target, count, after):
    whole = run_child(EXTRACT, data=data, out=tmp_path / "whole")
    assert whole.returncode == 0, whole.stderr[-2000:]
    first = run_child(EXTRACT, {"target": target, "count": count, "after": after}, data=data, out=tmp_path / "cut")
    assert killed(first), (first.returncode, first.stderr[-2000:])
    again = run_child(EXTRACT, data=data, out=tmp_path / "cut")
    assert again.returncode == 0, again.stderr[-2000:]
    for name in ("images.npy", "texts.npy", "index.json"):
        assert (tmp_path / "whole" / name).read_bytes() == (tmp_path / "cut" / name).read_bytes(), name


# ------------------------------------------------------------------------------------------ index
def test_an_index_build_killed_while_writing_is_rebuilt_identically(cache, tmp_path):
    whole = run_child(INDEX, features=cache, out=tmp_path / "whole")
    assert whole.returncode == 0, whole.stderr[-2000:]
    first = run_child(INDEX, {"target": "os.replace", "count": 1}, features=cache, out=tmp_path / "cut")
    assert killed(first), (first.returncode, first.stderr[-2000:])
    again = run_child(INDEX, features=cache, out=tmp_path / "cut")
    assert again.returncode == 0, again.stderr[-2000:]
    assert (tmp_path / "whole" / "index.faiss").read_bytes() == (tmp_path / "cut" / "index.faiss").read_bytes()
    manifest = [json.loads((tmp_path / d / "manifest.json").read_text()) for d in ("whole", "cut")]
    assert manifest[0]["ids"] == manifest[1]["ids"]
