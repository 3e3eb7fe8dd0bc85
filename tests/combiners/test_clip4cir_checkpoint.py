"""Combiners saved by CLIP4Cir's own code load as cirlab's ``combiner``, and anything else is refused in one line."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cirlab.combiners import build_combiner
from cirlab.combiners.clip4cir_checkpoint import Clip4CirCheckpointError, load_clip4cir_combiner
from cirlab.combiners.persistence import load_combiner_for
from cirlab.errors import CacheMismatchError

from ..evaluation.caches import random_cache


def _clip4cir_file(path, dim=8, projection_dim=None, hidden_dim=None, prefix=""):
    """A checkpoint laid out as CLIP4Cir's ``save_model`` writes it, and the module it holds."""
    torch.manual_seed(0)
    combiner = build_combiner("combiner", dim, projection_dim=projection_dim, hidden_dim=hidden_dim)
    state = {prefix + name: tensor for name, tensor in combiner.state_dict().items()}
    torch.save({"epoch": 7, "Combiner": state}, path)
    return combiner.eval()


@pytest.mark.parametrize("prefix", ["", "module."])
def test_a_clip4cir_checkpoint_loads_with_its_widths_and_gives_the_same_queries(tmp_path, prefix):
    original = _clip4cir_file(tmp_path / "combiner.pt", projection_dim=24, hidden_dim=40, prefix=prefix)
    loaded, description = load_clip4cir_combiner(tmp_path / "combiner.pt")
    assert (loaded.projection_dim, loaded.hidden_dim) == (24, 40)
    assert description["checkpoint"]["format"] == "clip4cir" and description["checkpoint"]["epoch"] == 7
    image, text = torch.randn(5, 8), torch.randn(5, 8)
    assert torch.equal(loaded(image, text), original(image, text))


def test_eval_search_and_serve_load_it_through_the_one_loader(tmp_path):
    cache = random_cache(tmp_path / "cache", dim=8)
    _clip4cir_file(tmp_path / "combiner.pt", dim=8)
    combiner, description = load_combiner_for(cache, tmp_path / "combiner.pt")
    assert combiner.dim == 8 and description["combiner"] == "combiner"
    _clip4cir_file(tmp_path / "wide.pt", dim=16)
    with pytest.raises(CacheMismatchError, match="wide.pt.*dim"):
        load_combiner_for(cache, tmp_path / "wide.pt")


@pytest.mark.parametrize("content, message", [
    ({"epoch": 1, "model": {}}, "not a CLIP4Cir combiner checkpoint"),
    ([1, 2, 3], "not a CLIP4Cir combiner checkpoint"),
    ({"Combiner": {"text_projection_layer.weight": torch.zeros(4, 8)}}, "do not fit"),
])
def test_other_torch_files_are_refused_in_one_line(tmp_path, content, message):
    path = tmp_path / "other.pt"
    torch.save(content, path)
    with pytest.raises(Clip4CirCheckpointError, match=message) as error:
        load_clip4cir_combiner(path)
    assert "\n" not in str(error.value) and str(path) in str(error.value)


def test_damaged_or_code_carrying_files_are_refused_without_running_anything(tmp_path):
    damaged = tmp_path / "damaged.pt"
    damaged.write_bytes(b"\x00" * 64)
    with pytest.raises(Clip4CirCheckpointError, match="not a readable torch checkpoint"):
        load_clip4cir_combiner(damaged)
    code = tmp_path / "code.pt"
    torch.save({"Combiner": {}, "payload": np.dtype}, code)  # not loadable with weights_only
    with pytest.raises(Clip4CirCheckpointError, match="not a readable torch checkpoint"):
        load_clip4cir_combiner(code)
    with pytest.raises(Clip4CirCheckpointError, match="not found"):
        load_clip4cir_combiner(tmp_path / "absent.pt")
