"""Saving and loading a combiner: ``combiner.safetensors`` (weights) + ``combiner.json`` (how to rebuild it).

Layout of a combiner folder::

    combiner.safetensors   the state dict; its metadata repeats the config and a save id
    combiner.json          {"format_version", "config", "save_id", "parameters", "extra", "files"}

Both files are written atomically, the weights first and the JSON last, and share a random save id.
An interrupted save therefore leaves either the previous pair or a weights file whose save id the
JSON does not name, which :func:`load_combiner` refuses instead of loading weights of one save with
the description of another. ``files`` records the size and sha256 of the weights file
(:mod:`cirlab.hashing`), checked on every load (the CLIP4Cir combiner at 640 dimensions is 236 MB,
about 0.15 s to hash), so damaged weights are refused in one line instead of making a worse model
without a word; a combiner saved before the record existed loads unchecked. ``extra`` is free JSON
for the caller (epoch, metrics, training config); training records the feature cache's identity
there under ``features``.

A training run folder keeps combiner folders under the engine's fixed names,
:data:`~cirlab.engine.checkpoint.BEST` (the best evaluation) and :data:`~cirlab.engine.checkpoint.LAST`
(the latest epoch). :func:`resolve_checkpoint` turns "a run folder or a combiner folder" into the
combiner folder, and :func:`load_combiner_for` is the one way commands load a combiner to use on a
feature cache: resolved, loaded, and checked against the cache's identity.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file

from cirlab.combiners.base import Combiner, build_combiner
from cirlab.combiners.clip4cir_checkpoint import is_torch_checkpoint, load_clip4cir_combiner
from cirlab.engine.checkpoint import BEST
from cirlab.errors import CacheMismatchError, CirlabError, ConfigError
from cirlab.hashing import DamagedFileError, checked_records, file_record, verify_file
from cirlab.io import atomic_path, atomic_write_json

if TYPE_CHECKING:
    from cirlab.features.cache import FeatureCache

FORMAT_VERSION = 1
WEIGHTS_FILE = "combiner.safetensors"
CONFIG_FILE = "combiner.json"
#: What to do about a damaged saved combiner.
RESAVE = "train or save the combiner again"

#: Combiner folders of a training run: the best evaluation so far, and the latest epoch.


class CombinerFileError(CacheMismatchError):
    """A saved combiner is missing, unreadable, or its two files do not belong together."""


def save_combiner(combiner: Combiner, folder: str | Path, extra: dict[str, Any] | None = None) -> None:
    """Write ``combiner`` to ``folder`` (created if needed) as weights + JSON, both atomically; the JSON
    records the weights file's size and sha256."""
    folder = Path(folder)
    config = combiner.config()
    save_id = uuid.uuid4().hex
    state = {name: tensor.detach().to("cpu").contiguous() for name, tensor in combiner.state_dict().items()}
    metadata = {"cirlab_config": json.dumps(config, sort_keys=True), "cirlab_save_id": save_id}
    with atomic_path(folder / WEIGHTS_FILE) as tmp:
        save_file(state, str(tmp), metadata=metadata)
        weights = file_record(tmp)
    atomic_write_json(folder / CONFIG_FILE, {
        "format_version": FORMAT_VERSION,
        "config": config,
        "save_id": save_id,
        "parameters": sum(p.numel() for p in combiner.parameters()),
        "extra": extra or {},
        "files": {WEIGHTS_FILE: weights},
    })


def read_combiner_metadata(path: str | Path) -> dict[str, Any]:
    """The parsed ``combiner.json`` of a combiner folder (or of the JSON file itself), checked."""
    json_path = _json_path(Path(path))
    try:
        meta = json.loads(json_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise CombinerFileError(f"{json_path}: unreadable combiner description ({error})") from None
    if not isinstance(meta, dict) or meta.get("format_version") != FORMAT_VERSION:
        found = meta.get("format_version") if isinstance(meta, dict) else None
        raise CombinerFileError(f"{json_path}: combiner format {found!r}, this cirlab reads format {FORMAT_VERSION}")
    config = meta.get("config")
    if not isinstance(config, dict) or "name" not in config or "dim" not in config:
        raise CombinerFileError(f"{json_path}: no valid 'config' (with name and dim) in the combiner description")
    dim = config["dim"]
    if isinstance(dim, bool) or not isinstance(dim, int) or dim < 1:
        raise CombinerFileError(f"{json_path}: the combiner's dim is {dim!r}, expected a positive integer")
    try:
        meta["files"] = checked_records(meta.get("files"), json_path)
    except DamagedFileError as error:
        raise CombinerFileError(str(error)) from None
    return meta


def load_combiner(path: str | Path, device: str | torch.device = "cpu") -> Combiner:
    """Rebuild the combiner saved in folder ``path`` (or from its ``combiner.json``), in eval mode on ``device``."""
    json_path = _json_path(Path(path))
    meta = read_combiner_metadata(json_path)
    config = dict(meta["config"])
    try:
        combiner = build_combiner(config.pop("name"), config.pop("dim"), **config)
    except (CirlabError, ValueError, TypeError) as error:  # a value of the wrong type fails inside the constructor
        raise CombinerFileError(f"{json_path}: cannot rebuild the combiner ({error})") from None
    weights_path = json_path.parent / WEIGHTS_FILE
    record = meta["files"].get(WEIGHTS_FILE)
    state, weights_meta = _read_weights(weights_path, record, json_path)
    if weights_meta.get("cirlab_save_id") != meta.get("save_id"):
        raise CombinerFileError(f"{weights_path}: written by a different save than {json_path.name} "
                                f"(an interrupted save?); save the combiner again")
    _verify_weights(weights_path, record, json_path)
    expected = combiner.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong_shape = sorted(name for name in set(expected) & set(state) if expected[name].shape != state[name].shape)
    if missing or unexpected or wrong_shape:
        details = "; ".join(f"{label}: {', '.join(names[:5])}" for label, names in
                            (("missing", missing), ("unexpected", unexpected), ("wrong shape", wrong_shape)) if names)
        raise CombinerFileError(f"{weights_path}: weights do not fit the {config_name(meta)} combiner ({details})")
    combiner.load_state_dict(state)
    return combiner.to(device).eval()


def resolve_checkpoint(path: str | Path) -> Path:
    """The combiner folder that ``path`` names: ``path`` itself when it holds a saved combiner, else the
    training run folder's best checkpoint ``path/best``."""
    path = Path(path)
    if not path.is_dir():
        raise CombinerFileError(f"{path}: checkpoint folder not found")
    for folder in (path, path / BEST):
        if (folder / CONFIG_FILE).is_file():
            return folder
    raise CombinerFileError(f"{path}: not a combiner checkpoint (no {CONFIG_FILE} here or in {BEST}/)")


def load_combiner_for(cache: FeatureCache, checkpoint: str | Path | None = None, *, name: str | None = None,
                      device: str | torch.device = "cpu") -> tuple[Combiner, dict[str, Any]]:
    """The combiner to use on ``cache`` (in eval mode on ``device``) and a JSON-ready description of it.

    ``checkpoint`` is a combiner folder, a training run folder (its ``best/``), or a ``.pt`` checkpoint of
    CLIP4Cir's own code (:mod:`~cirlab.combiners.clip4cir_checkpoint`, checked for the dimension); without one, the
    parameter-free combiner ``name`` (such as ``sum``) is built for the cache's dimension, since
    building one with weights by name would give untrained weights. A checkpoint is checked against
    the cache with :func:`~cirlab.features.identity.check_identity` on the feature-space keys
    (:data:`~cirlab.features.identity.ENCODER_KEYS`: the encoder and the dimension), so a combiner
    trained on another encoder's features is refused in one line; the data set may differ.
    """
    from cirlab.features.identity import ENCODER_KEYS, check_identity

    if checkpoint is None:
        if name is None:
            raise ConfigError("no combiner given: pass a checkpoint (--checkpoint RUN_DIR) or a parameter-free "
                              "combiner name (--combiner sum)")
        combiner = build_combiner(name, cache.dim)
        if any(True for _ in combiner.parameters()):
            raise ConfigError(f"combiner {name!r} has trainable parameters; use a trained one with --checkpoint "
                              f"RUN_DIR (only parameter-free combiners such as 'sum' are built by name)")
        return combiner.to(device).eval(), {"combiner": name, "checkpoint": None}
    if is_torch_checkpoint(checkpoint):  # a combiner trained with CLIP4Cir's code
        combiner, description = load_clip4cir_combiner(checkpoint, device=device)
        check_identity({"dim": combiner.dim}, cache, what=Path(checkpoint), keys=("dim",))
        return combiner, description
    folder = resolve_checkpoint(checkpoint)
    meta = read_combiner_metadata(folder)
    extra = meta.get("extra") or {}
    recorded = {**(extra.get("features") or {}), "dim": meta["config"]["dim"]}
    check_identity(recorded, cache, what=folder / CONFIG_FILE, keys=ENCODER_KEYS)
    description = {"combiner": meta["config"]["name"],
                   "checkpoint": {"path": str(folder), "config": meta["config"], "save_id": meta.get("save_id"),
                                  "extra": extra}}
    return load_combiner(folder, device=device), description


def config_name(meta: dict[str, Any]) -> str:
    """``name(dim=...)`` of a combiner description, for messages."""
    return f"{meta['config']['name']!r} (dim={meta['config']['dim']})"


def _json_path(path: Path) -> Path:
    json_path = path if path.name == CONFIG_FILE or path.suffix == ".json" else path / CONFIG_FILE
    if not json_path.parent.is_dir():
        raise CombinerFileError(f"{json_path.parent}: combiner folder not found")
    if not json_path.is_file():
        raise CombinerFileError(f"{json_path}: missing; not a saved combiner folder (or the save did not finish)")
    return json_path


def _read_weights(weights_path: Path, record: dict[str, Any] | None,
                  json_path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """The state dict and metadata of the weights file; one that cannot be read is reported as damaged
    when it differs from its ``record``, else as unreadable."""
    if not weights_path.is_file():
        raise CombinerFileError(f"{weights_path}: missing; the combiner's weights were not saved")
    try:
        with safe_open(str(weights_path), framework="pt") as handle:
            weights_meta = handle.metadata() or {}
        return load_file(str(weights_path)), weights_meta
    except (SafetensorError, OSError, ValueError, RuntimeError) as error:
        _verify_weights(weights_path, record, json_path)
        raise CombinerFileError(f"{weights_path}: unreadable weights file ({error})") from None


def _verify_weights(weights_path: Path, record: dict[str, Any] | None, json_path: Path) -> None:
    """Refuse a weights file whose size or sha256 differs from the one ``combiner.json`` records."""
    try:
        verify_file(weights_path, record, recorded_in=json_path, advice=RESAVE)
    except DamagedFileError as error:
        raise CombinerFileError(str(error)) from None
