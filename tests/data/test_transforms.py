import pytest
import torch
from PIL import Image
from torchvision import transforms as T

from cirlab.data.transforms import TargetPad, build_preprocess
from cirlab.errors import ConfigError


def test_targetpad_pads_elongated_images_to_the_ratio():
    image = Image.new("RGB", (100, 200), (255, 0, 0))
    padded = TargetPad(1.25)(image)
    # max side / ratio = 160 → horizontal pad of 30 on each side
    assert padded.size == (160, 200)
    assert padded.getpixel((0, 100)) == (0, 0, 0)
    assert padded.getpixel((80, 100)) == (255, 0, 0)


def test_targetpad_pads_wide_images_vertically():
    padded = TargetPad(1.25)(Image.new("RGB", (300, 100)))
    assert padded.size == (300, 240)


def test_targetpad_leaves_near_square_images_alone():
    image = Image.new("RGB", (110, 100))
    assert TargetPad(1.25)(image) is image


def test_ratio_below_one_is_refused():
    with pytest.raises(ConfigError):
        TargetPad(0.5)


def test_build_preprocess_wraps_the_encoder_transform():
    encoder = T.Compose([T.Resize(32), T.CenterCrop(32), T.ToTensor()])
    image = Image.new("RGB", (40, 120), (0, 255, 0))
    padded = build_preprocess("targetpad", encoder)(image)
    plain = build_preprocess("encoder", encoder)(image)
    assert padded.shape == plain.shape == (3, 32, 32)
    # the centre crop of the unpadded image is all garment; the padded one keeps black borders
    assert torch.all(plain[1] > 0.9)
    assert padded[1, :, 0].max() < 0.05
    with pytest.raises(ConfigError):
        build_preprocess("nope", encoder)
