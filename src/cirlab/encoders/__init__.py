"""Encoders: a thin layer over open_clip (architecture name + pretrained tag, or a cirlab checkpoint).

``load_encoder(EncoderSpec(...))`` gives an :class:`Encoder` for inference (feature extraction,
search); ``create_model`` gives the bare open_clip model, transform and tokenizer for training code;
``save_encoder_checkpoint`` writes weights that ``EncoderSpec(checkpoint=...)`` loads back.
"""

from cirlab.encoders.checkpoint import read_checkpoint_config, save_encoder_checkpoint
from cirlab.encoders.configs import is_small_model, list_small_models
from cirlab.encoders.encoder import Encoder, load_encoder
from cirlab.encoders.factory import architecture_config, available_tags, create_model
from cirlab.encoders.hashing import state_dict_hash
from cirlab.encoders.spec import EncoderSpec

__all__ = [
    "Encoder", "EncoderSpec", "architecture_config", "available_tags", "create_model", "is_small_model",
    "list_small_models", "load_encoder", "read_checkpoint_config", "save_encoder_checkpoint", "state_dict_hash",
]
