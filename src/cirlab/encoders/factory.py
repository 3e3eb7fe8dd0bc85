"""Building open_clip models from an :class:`~cirlab.encoders.EncoderSpec`.

open_clip does the building; this module decides where the weights come from and turns every way
of not getting them (offline, unknown tag, unreadable or mismatched file) into a one-line
:class:`~cirlab.errors.WeightsUnavailableError` instead of open_clip's logged retries and
multi-line state-dict reports.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch
from torch import nn

from cirlab.encoders import configs
from cirlab.encoders.checkpoint import _one_line, load_weights_into, read_checkpoint_config, read_checkpoint_weights
from cirlab.encoders.spec import EncoderSpec
from cirlab.errors import ConfigError, WeightsUnavailableError


def create_model(spec: EncoderSpec, *, train_preprocess: bool = False) -> tuple[nn.Module, Callable, Callable]:
    """Build ``(model, preprocess, tokenizer)`` for ``spec`` on the CPU in fp32, in eval mode.

    ``preprocess`` is the model's own evaluation image transform (resize, centre crop, normalise;
    PIL image → tensor), or open_clip's training transform (random resized crop) when
    ``train_preprocess`` is true. ``tokenizer`` maps a list of strings to a token tensor.
    """
    import open_clip
    from open_clip.transform import PreprocessCfg, image_transform_v2

    architecture = architecture_config(spec.model)
    if spec.checkpoint is not None:
        model = _from_checkpoint(spec)
    elif spec.pretrained:
        model = _from_pretrained(spec)
    else:
        model = _build(spec.model, seed=spec.seed)
    model.eval()
    preprocess = image_transform_v2(PreprocessCfg(**open_clip.get_model_preprocess_cfg(model)),
                                    is_train=train_preprocess)
    context_length = architecture["text_cfg"].get("context_length")
    tokenizer = open_clip.get_tokenizer(spec.model, context_length=context_length)
    return model, preprocess, tokenizer


def architecture_config(name: str) -> dict[str, Any]:
    """open_clip's config dict of architecture ``name`` (cirlab's small ones included)."""
    import open_clip

    configs.ensure_registered()
    config = open_clip.get_model_config(name)
    if config is None:
        small = ", ".join(configs.list_small_models())
        raise ConfigError(f"unknown encoder architecture {name!r}; cirlab's small models: {small}; "
                          f"open_clip's include RN50x4, ViT-B-32 (see open_clip.list_models())")
    return config


def available_tags(name: str) -> list[str]:
    """open_clip pretrained tags known for architecture ``name``."""
    import open_clip

    return list(open_clip.list_pretrained_tags_by_model(name))


@contextlib.contextmanager
def _seeded(seed: int) -> Iterator[None]:
    """Run the body with torch's CPU generator seeded, restoring the caller's generator after."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


@contextlib.contextmanager
def _quiet_open_clip() -> Iterator[None]:
    """Silence open_clip's info/warning logging (e.g. "initialized randomly"), which cirlab reports itself."""
    logger = logging.getLogger()
    level = logger.level
    logger.setLevel(max(level, logging.ERROR))
    try:
        yield
    finally:
        logger.setLevel(level)


def _build(name: str, *, seed: int, quick_gelu: bool = False, **kwargs: Any) -> nn.Module:
    """An open_clip model of architecture ``name``, randomly initialised from ``seed`` (then weights, if given)."""
    import open_clip

    configs.ensure_registered()
    with _seeded(seed), _quiet_open_clip():
        return open_clip.create_model(name, force_quick_gelu=quick_gelu, device="cpu", precision="fp32", **kwargs)


def _from_checkpoint(spec: EncoderSpec) -> nn.Module:
    folder = Path(spec.checkpoint)
    config = read_checkpoint_config(folder)
    if config["model"] != spec.model:
        raise WeightsUnavailableError(f"{folder}: checkpoint holds a {config['model']!r} model, "
                                      f"but architecture {spec.model!r} was asked for")
    state = read_checkpoint_weights(folder, config)
    model = _build(spec.model, seed=spec.seed, quick_gelu=bool(config.get("quick_gelu", False)))
    load_weights_into(model, state, folder, spec.model)
    return model


def _from_pretrained(spec: EncoderSpec) -> nn.Module:
    import open_clip
    from open_clip.transform import merge_preprocess_dict

    name, pretrained = spec.model, str(spec.pretrained)
    if os.path.isfile(pretrained):
        weights_file, tag_config = pretrained, {}
    else:
        tag_config = open_clip.get_pretrained_cfg(name, pretrained)
        if not tag_config:
            raise WeightsUnavailableError(_unknown_tag_message(name, pretrained))
        weights_file = _download(name, pretrained, tag_config)
    try:
        return _build(name, seed=spec.seed, quick_gelu=bool(tag_config.get("quick_gelu", False)),
                      pretrained=weights_file, force_preprocess_cfg=merge_preprocess_dict({}, tag_config))
    except Exception as exc:  # torch.load/unpickling of a foreign file fails with many types (IndexError, EOFError...)
        raise WeightsUnavailableError(f"{weights_file}: cannot load as {name!r} weights ({_one_line(exc)})") from None


def _unknown_tag_message(name: str, tag: str) -> str:
    if configs.is_small_model(name):
        return (f"{name!r} has no pretrained weights (cirlab's small models start from a random "
                f"initialisation: use pretrained=None / --pretrained none, or a --checkpoint)")
    tags = available_tags(name)
    known = ", ".join(tags) if tags else "none"
    return (f"{name!r} has no pretrained weights tagged {tag!r} and no file of that name exists; "
            f"known tags: {known}")


def _download(name: str, tag: str, tag_config: dict[str, Any]) -> str:
    """Local path of the weights of ``name``/``tag``: from the local cache, or downloaded by open_clip."""
    import open_clip

    try:
        path = open_clip.download_pretrained(tag_config)
    except Exception as exc:  # open_clip and huggingface_hub raise many types for one cause: no file
        if os.environ.get("HF_HUB_OFFLINE", "") not in ("", "0"):
            reason = "offline (HF_HUB_OFFLINE is set) and not in the local Hugging Face cache"
        else:
            reason = _one_line(exc)
        raise WeightsUnavailableError(f"cannot obtain {name!r} weights tagged {tag!r}: {reason}") from None
    if not path or not os.path.isfile(path):
        raise WeightsUnavailableError(f"cannot obtain {name!r} weights tagged {tag!r}: no download source known")
    return path
