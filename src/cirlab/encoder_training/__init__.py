"""Training the encoders themselves: CLIP-style pretraining on tags, and CLIP4Cir fine-tuning on triplets.

``pretrain(data_root, out, model=...)`` teaches an open_clip model a data set's attribute words from
image–description pairs; ``finetune(data_root, out, checkpoint=... | model=...)`` adapts CLIP encoders
to composed retrieval. Both write an encoder checkpoint that :mod:`cirlab.encoders` loads, log to CSV
and TensorBoard, resume exactly after an interruption, and run under ``torchrun``.

Names are imported on first use, so ``import cirlab.encoder_training`` does not load torch.
"""

from __future__ import annotations

from cirlab.lazy import lazy_exports

_EXPORTS = {
    "pretrain": "cirlab.encoder_training.pretraining",
    "PretrainResult": "cirlab.encoder_training.pretraining",
    "finetune": "cirlab.encoder_training.finetuning",
    "FinetuneResult": "cirlab.encoder_training.finetuning",
    "TrainingOptions": "cirlab.encoder_training.options",
    "describe": "cirlab.encoder_training.descriptions",
}

__all__ = sorted(_EXPORTS)

__getattr__ = lazy_exports(__name__, _EXPORTS)
