"""cirlab's small model architectures, kept as open_clip JSON configs inside the package.

The files in ``cirlab/model_configs/`` use open_clip's own config schema (``embed_dim``,
``vision_cfg``, ``text_cfg``; see ``open_clip.model.CLIPVisionCfg`` and ``CLIPTextCfg`` for every
field), so open_clip builds them like any of its own architectures. They exist for offline work:
no weights are ever downloaded for them; they start from a seeded random initialisation and are
trained with ``cirlab pretrain`` / ``cirlab finetune``.

=====================  ===========  =====  ========================================================
name                   image side   dim    towers
=====================  ===========  =====  ========================================================
``cirlab-vit-tiny``    64 px        64     ViT, patch 8, width 128, 2 layers; text width 128, 2 layers
``cirlab-rn-tiny``     64 px        64     ModifiedResNet [1,1,1,1], width 16; text width 128, 2 layers
``cirlab-vit-small``   96 px        128    ViT, patch 12, width 192, 4 layers; text width 192, 3 layers
=====================  ===========  =====  ========================================================

Text towers use a context of 32 tokens (FashionIQ's caption pairs are short) and open_clip's BPE
tokenizer, whose vocabulary ships with open_clip, so tokenisation works offline too.

The configs are registered with open_clip on first use (:func:`ensure_registered`), not when cirlab
is imported.
"""

from __future__ import annotations

from pathlib import Path

CONFIG_DIR = Path(__file__).resolve().parents[1] / "model_configs"


def list_small_models() -> list[str]:
    """Names of the small architectures shipped with cirlab, sorted."""
    return sorted(path.stem for path in CONFIG_DIR.glob("*.json"))


def is_small_model(name: str) -> bool:
    """Whether ``name`` is one of cirlab's own small architectures."""
    return (CONFIG_DIR / f"{name}.json").is_file()


def ensure_registered() -> None:
    """Make open_clip know cirlab's small configs; safe to call any number of times.

    ``open_clip.add_model_config`` appends the folder to open_clip's search path and rescans, so it
    is called only when a cirlab name is still unknown to open_clip.
    """
    import open_clip

    known = set(open_clip.list_models())
    if not set(list_small_models()) <= known:
        open_clip.add_model_config(CONFIG_DIR)
