import pytest
from torch import nn

from cirlab.errors import CacheMismatchError
from cirlab.search.components import check_combiner, encoder_spec_from_manifest


def test_encoder_spec_comes_from_the_cache_manifest(tmp_path):
    manifest = {"model": "cirlab-vit-tiny", "pretrained": None, "checkpoint": None,
                "encoder": {"model": "cirlab-vit-tiny", "seed": 7, "source": "random"}}
    spec = encoder_spec_from_manifest(manifest, tmp_path)
    assert (spec.model, spec.pretrained, spec.checkpoint, spec.seed) == ("cirlab-vit-tiny", None, None, 7)
    spec = encoder_spec_from_manifest({"model": "RN50x4", "pretrained": "openai", "checkpoint": str(tmp_path)}, "x")
    assert (spec.pretrained, spec.checkpoint, spec.seed) == ("openai", tmp_path, 0)
    with pytest.raises(CacheMismatchError, match="names no encoder model"):
        encoder_spec_from_manifest({}, tmp_path)


def test_check_combiner_probes_modules_without_a_dim():
    class Projection(nn.Module):
        def __init__(self, d_in, d_out):
            super().__init__()
            self.linear = nn.Linear(d_in, d_out)

        def forward(self, image, text):
            return self.linear(image + text)

    check_combiner(Projection(12, 12), 12, "ok")
    with pytest.raises(CacheMismatchError, match="does not accept 10-d features"):
        check_combiner(Projection(12, 12), 10, "here")
    with pytest.raises(CacheMismatchError, match=r"returns shape \(1, 6\) for 12-d features"):
        check_combiner(Projection(12, 6), 12, "here")
