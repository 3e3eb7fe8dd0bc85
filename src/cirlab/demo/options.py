"""What ``cirlab demo`` runs: :class:`DemoOptions`, with defaults sized for two CPU cores.

The defaults make the first run finish in about four minutes on a 2-core machine without a GPU (3.6
minutes measured on two quiet cores, the comparison's runs two at a time; see docs/results.md) while still
showing real learning: the small encoder learns the benchmark's attribute words, the trained combiners beat the
untrained ``sum`` baseline by about 20 points of headline recall, and the strategies differ (hard negatives from
the first step collapse, semi-hard ones learn fastest). :meth:`DemoOptions.tiny` is a toy size for tests
(well under a minute).

``dataset="cirr"`` runs the same pipeline on the synthetic benchmark in CIRR's layout, scored by CIRR's
protocol. :meth:`DemoOptions.for_dataset` gives its defaults, which keep it short (:data:`CIRR_DEMO`):
500 images per category, three strategies (random, semi-hard, hard: CIRR has no categories, so the
``category`` sampler has nothing to choose from), two seeds and no reference runs; CIRR's one caption
form is the one training draws.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

from cirlab.compare import DEFAULT_STRATEGIES
from cirlab.errors import ConfigError

__all__ = ["CIRR_DEMO", "DATASETS", "DEFAULT_STRATEGIES", "DemoOptions"]

#: The layouts of the synthetic benchmark the demo runs on (and so the protocol that scores it).
DATASETS: tuple[str, ...] = ("fashioniq", "cirr")
#: CIRR's one caption form is the only one training can draw.
CIRR_TRAIN_OVERRIDES: tuple[tuple[str, Any], ...] = (("caption_forms", [0]),)
#: What the CIRR demo changes in the defaults, to keep it short (see the module notes).
CIRR_DEMO: MappingProxyType[str, Any] = MappingProxyType({
    "images_per_category": 500, "strategies": ("random", "semi-hard", "hard"), "seeds": 2,
    "include_contrastive": False, "include_seed": False})


@dataclass(frozen=True)
class DemoOptions:
    """Sizes and seeds of every stage of the demo; any field can be changed with :meth:`with_overrides`."""

    out: Path = Path("demo-output")  # every stage writes a sub-folder here
    dataset: str = "fashioniq"  # the synthetic benchmark's layout and protocol, a name of DATASETS
    preset: str = "default"  # synthetic benchmark preset (cirlab.synth.SynthConfig.preset)
    images_per_category: int | None = None  # data set size, duplicates included; None = the preset's
    image_size: int | None = None  # image side in pixels; None = the preset's
    ambiguity: str = "default"  # the benchmark's ambiguity level (cirlab.synth.SynthConfig.ambiguity)
    model: str = "cirlab-rn-tiny"  # the small open_clip architecture pretrained on the tags
    pretrain_epochs: int = 4
    pretrain_batch_size: int = 64
    pretrain_lr: float = 1e-3
    strategies: tuple[str, ...] = DEFAULT_STRATEGIES
    include_contrastive: bool = True  # also train CLIP4Cir's in-batch contrastive recipe as a reference run
    include_seed: bool = True  # also train the seed system's recipe as a reference run
    seeds: int = 3  # runs per strategy (and reference run), with seeds seed, seed + 1, ...
    epochs: int = 20  # combiner training epochs of every strategy
    batch_size: int = 128  # combiner training batch size
    config: str = "synthetic"  # the combiner training config every strategy starts from
    train_overrides: tuple[tuple[str, Any], ...] = ()  # (config key, value) pairs applied to every strategy
    seed: int = 0  # seeds the data set, the encoder and every combiner run
    workers: int = 0  # image-decoding processes (0: decode in the main process, cheapest on 2 cores)
    jobs: int | str = "auto"  # comparison runs trained at once (cirlab.compare.parallel); auto: one per CPU core
    device: str = "auto"
    tensorboard: bool = True
    queries: int = 4  # validation queries in each query figure

    @classmethod
    def tiny(cls, **changes: Any) -> DemoOptions:
        """A toy size for tests: the ``tiny`` benchmark, a few pretraining steps, two strategies, two epochs.

        A few pretraining steps leave the image features nearly parallel (cosines above 0.98), which the
        samplers' near-duplicate guard would read as "every gallery image duplicates the target"; the
        toy size therefore turns that rule off (exact duplicates are still guarded).
        """
        base = cls(preset="tiny", pretrain_epochs=2, pretrain_batch_size=32,
                   strategies=("random", "hard"), include_contrastive=False, include_seed=False, seeds=2,
                   epochs=2, batch_size=32,
                   tensorboard=False, queries=2, jobs=1,
                   train_overrides=(("negatives_options.near_duplicate_threshold", None),))
        return base.with_overrides(**changes)

    @classmethod
    def for_dataset(cls, dataset: str, *, tiny: bool = False, **changes: Any) -> DemoOptions:
        """The defaults (or the :meth:`tiny` size) on the synthetic benchmark in ``dataset``'s layout, then
        ``changes``: FashionIQ's are the class defaults; CIRR's are :data:`CIRR_DEMO` (at the tiny size only
        the training overrides change)."""
        base = cls.tiny() if tiny else cls()
        if dataset == "cirr":
            sizes = {} if tiny else dict(CIRR_DEMO)
            base = base.with_overrides(dataset=dataset, train_overrides=base.train_overrides + CIRR_TRAIN_OVERRIDES,
                                       **sizes)
        return base.with_overrides(dataset=dataset, **changes)

    def with_overrides(self, **changes: Any) -> DemoOptions:
        """A copy with the fields in ``changes`` replaced (``None`` values are ignored), validated."""
        values = {k: v for k, v in changes.items() if v is not None}
        unknown = sorted(set(values) - {f.name for f in dataclasses.fields(self)})
        if unknown:
            raise ConfigError(f"unknown demo options {unknown}")
        if "out" in values:
            values["out"] = Path(values["out"])
        if "strategies" in values:
            values["strategies"] = tuple(values["strategies"])
        if "train_overrides" in values:
            values["train_overrides"] = tuple(tuple(item) for item in values["train_overrides"])
        return dataclasses.replace(self, **values).validated()

    def validated(self) -> DemoOptions:
        """Return ``self`` after checking the numbers, or raise :class:`ConfigError` naming the bad one."""
        positive = {"pretrain epochs": self.pretrain_epochs, "pretrain batch size": self.pretrain_batch_size,
                    "epochs": self.epochs, "batch size": self.batch_size}
        for name, value in positive.items():
            if value < 1:
                raise ConfigError(f"demo {name} must be at least 1, got {value}")
        if self.pretrain_batch_size < 2:
            raise ConfigError(f"demo pretrain batch size must be at least 2, got {self.pretrain_batch_size}")
        if self.workers < 0 or self.queries < 0 or self.seed < 0:
            raise ConfigError("demo workers, queries and seed must not be negative")
        if not self.strategies:
            raise ConfigError("the demo needs at least one strategy")
        if self.dataset not in DATASETS:
            raise ConfigError(f"unknown demo data set {self.dataset!r}; use one of {list(DATASETS)}")
        if self.jobs != "auto" and (not isinstance(self.jobs, int) or self.jobs < 1):
            raise ConfigError(f"demo jobs must be a whole number of at least 1 or 'auto', got {self.jobs!r}")
        return self
