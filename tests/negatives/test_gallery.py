"""Gallery validation and construction."""

from __future__ import annotations

import pytest
import torch

from cirlab.errors import ConfigError
from cirlab.negatives import Gallery


def test_from_raw_normalises_and_defaults_to_unique_items() -> None:
    gallery = Gallery.from_raw(torch.tensor([[3.0, 4.0], [0.0, 2.0]]), torch.tensor([0, 1]))
    assert torch.allclose(gallery.features, torch.tensor([[0.6, 0.8], [0.0, 1.0]]))
    assert gallery.duplicate_groups.tolist() == [-1, -1]
    assert (len(gallery), gallery.dim, gallery.device.type) == (2, 2, "cpu")
    assert torch.equal(gallery.to("cpu").features, gallery.features)


def test_refuses_unnormalised_features() -> None:
    with pytest.raises(ConfigError, match="must be L2-normalised"):
        Gallery(torch.tensor([[3.0, 4.0]]), torch.tensor([0]), torch.tensor([-1]))


@pytest.mark.parametrize(("categories", "groups", "match"), [
    (torch.tensor([0, 1, 2]), torch.tensor([-1, -1]), "categories must be a long"),
    (torch.tensor([0.0, 1.0]), torch.tensor([-1, -1]), "categories must be a long"),
    (torch.tensor([0, 1]), torch.tensor([-1]), "duplicate_groups must be a long"),
])
def test_refuses_mismatched_metadata(categories, groups, match) -> None:
    with pytest.raises(ConfigError, match=match):
        Gallery(torch.eye(2), categories, groups)


def test_refuses_empty_or_non_float_features() -> None:
    with pytest.raises(ConfigError, match="non-empty float"):
        Gallery(torch.zeros(0, 4), torch.zeros(0, dtype=torch.long), torch.zeros(0, dtype=torch.long))
    with pytest.raises(ConfigError, match="non-empty float"):
        Gallery(torch.eye(2, dtype=torch.long), torch.tensor([0, 1]), torch.tensor([-1, -1]))

