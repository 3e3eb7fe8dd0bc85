"""The options several commands share, each declared once: one flag, one help text, one reading of its value.

Defaults and choices come from where they are defined (the settings dataclasses, ``runtime.PRECISIONS``,
the plug-in registries) rather than being retyped here. Those that need torch to be known (registry
names, precisions, :class:`~cirlab.training.config.TrainConfig` defaults) are read only when a help text
is shown (:func:`help_later`) or a value is checked, so that building the parser stays fast.
"""

from __future__ import annotations

import argparse
import importlib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from cirlab.compare import DEFAULT_STRATEGIES

#: What options are added to: a parser or one of its argument groups (argparse's common base class).
Parser = argparse._ActionsContainer

#: Attribute of an :class:`argparse.Action` holding a function that writes its help text when help is shown.
LATER_HELP = "later_help"

#: Plug-in kinds chosen by name: the module and attribute of each one's registry.
REGISTRIES: dict[str, tuple[str, str]] = {
    "combiner": ("cirlab.combiners", "COMBINERS"),
    "loss": ("cirlab.losses", "LOSSES"),
    "negatives": ("cirlab.negatives", "SAMPLERS"),
}


def help_later(action: argparse.Action, describe: Callable[[], str]) -> argparse.Action:
    """Let ``describe()`` write the help text of ``action`` when help is shown (it may import torch);
    like any help text it may use ``%(default)s``. Until then the text given to ``add_argument`` stands."""
    setattr(action, LATER_HELP, describe)
    return action


def registered_names(kind: str) -> list[str]:
    """The names registered for the plug-in ``kind`` (``combiner``, ``loss``, ``negatives``); for
    ``negatives``, also ``in-batch`` (mine nothing)."""
    module, attribute = REGISTRIES[kind]
    names = list(getattr(importlib.import_module(module), attribute).names())
    if kind == "negatives":
        from cirlab.training.config import IN_BATCH

        names.append(IN_BATCH)
    return names


# ----------------------------------------------------------------- value readers
def name_list(text: str) -> list[str]:
    """``"a,b, c"`` → ``["a", "b", "c"]``; an empty list is refused."""
    names = [part.strip() for part in text.split(",") if part.strip()]
    if not names:
        raise argparse.ArgumentTypeError(f"expected comma-separated names, got {text!r}")
    return names


class _NameListAction(argparse.Action):
    """Collects names given comma-separated (``dress,shirt``) or, as well, space-separated (``dress shirt``)."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: str | Sequence[str] | None, option_string: str | None = None) -> None:
        texts = [values] if isinstance(values, str) else list(values or [])
        try:
            setattr(namespace, self.dest, name_list(",".join(texts)))
        except argparse.ArgumentTypeError as exc:
            raise argparse.ArgumentError(self, str(exc)) from None


def precision(text: str) -> str:
    """A precision name, checked against :data:`cirlab.runtime.PRECISIONS`."""
    from cirlab.runtime import PRECISIONS

    if text not in PRECISIONS:
        raise argparse.ArgumentTypeError(f"unknown precision {text!r}; known: {', '.join(PRECISIONS)}")
    return text


# ----------------------------------------------------------------- shared options
#: A help text, or a function that writes it when help is shown.
Text = str | Callable[[], str]


def describe(action: argparse.Action, text: Text, default: Text | None = None) -> argparse.Action:
    """Give ``action`` the help ``text (default: DEFAULT)``; either part may be a function, called when help
    is shown."""
    def render() -> str:
        body = text() if callable(text) else text
        shown = default() if callable(default) else default
        return body if shown is None else f"{body} (default: {shown})"

    if callable(text) or callable(default):
        action.help = text if isinstance(text, str) else None
        return help_later(action, render)
    action.help = render()
    return action


def add_dataset(parser: Parser) -> argparse.Action:
    """``--dataset``: the layout of the ``--data`` folder (a name of :data:`cirlab.data.DATASETS`); recognised from
    its files when left out."""
    from cirlab.data import DATASETS

    action = parser.add_argument("--dataset", choices=DATASETS.names(), default=None, metavar="NAME")
    return describe(action, f"layout of the data set folder: {', '.join(DATASETS.names())}",
                    "recognised from its files")


def add_device(parser: Parser, default: str | None = "auto",
               default_text: Text | None = None) -> argparse.Action:
    """``--device``: where models run."""
    action = parser.add_argument("--device", default=default, metavar="DEVICE")
    return describe(action, "auto (a CUDA GPU when present, else the CPU), cpu, cuda or cuda:N",
                    default_text or default or "auto")


def add_precision(parser: Parser, default: str | None = "fp32",
                  default_text: Text | None = None) -> argparse.Action:
    """``--precision``: autocast precision, one of :data:`cirlab.runtime.PRECISIONS`."""
    def text() -> str:
        from cirlab.runtime import PRECISIONS

        return f"autocast precision: {', '.join(PRECISIONS)}; fp16 needs a GPU"

    action = parser.add_argument("--precision", type=precision, default=default, metavar="PRECISION")
    return describe(action, text, default_text or default)


def add_categories(parser: Parser, *aliases: str,
                   default_text: Text = "every category present") -> argparse.Action:
    """``--categories``: comma-separated category names (space-separated ones are read too)."""
    action = parser.add_argument("--categories", *aliases, dest="categories", nargs="+", action=_NameListAction,
                                 default=None, metavar="LIST")
    return describe(action, "comma-separated categories, e.g. dress,shirt", default_text)


def add_seed(parser: Parser, default: int | None, what: str,
             default_text: Text | None = None) -> argparse.Action:
    """``--seed``: the seed of ``what``."""
    action = parser.add_argument("--seed", type=int, default=default, metavar="N")
    return describe(action, f"random seed of {what}", default_text if default_text is not None else str(default))


def add_workers(parser: Parser, default: int | None,
                default_text: Text | None = None) -> argparse.Action:
    """``--workers``: processes that decode images."""
    action = parser.add_argument("--workers", type=int, default=default, metavar="N")
    return describe(action, "image-decoding worker processes per process, 0 to decode in the process itself",
                    default_text if default_text is not None else str(default))


def jobs_count(text: str) -> int | str:
    """``--jobs``'s value: a whole number of at least 1, or ``auto``."""
    if text == "auto":
        return text
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number or 'auto', got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def add_jobs(parser: Parser, default: int | str | None, default_text: Text | None = None) -> argparse.Action:
    """``--jobs``: training runs at once, each in its own worker process."""
    action = parser.add_argument("--jobs", type=jobs_count, default=default, metavar="N|auto")
    return describe(action, "training runs at once, each in a worker process with an equal share of the CPU cores; "
                            "auto: one per core up to 4 on a CPU, one on a GPU; the results are those of one run "
                            "after another", default_text if default_text is not None else str(default))


def add_out(parser: Parser, what: str, *, required: bool = False, default: Path | None = None,
            metavar: str = "DIR") -> argparse.Action:
    """``--out``: where the command writes ``what``."""
    action = parser.add_argument("--out", type=Path, required=required, default=default, metavar=metavar)
    return describe(action, what, None if default is None else str(default))


def add_features(parser: Parser, *, required: bool = False,
                 default_text: Text | None = None) -> argparse.Action:
    """``--features``: a feature cache folder written by ``cirlab extract``."""
    action = parser.add_argument("--features", type=Path, required=required, default=None, metavar="DIR")
    return describe(action, "feature cache folder, from `cirlab extract`", default_text)


def add_component(parser: Parser, kind: str, what: str,
                  default_text: Text | None = None) -> argparse.Action:
    """``--combiner``, ``--loss`` or ``--negatives``: a plug-in chosen by its registry name."""
    action = parser.add_argument(f"--{kind}", default=None, metavar="NAME")
    return describe(action, lambda: f"{what}: {', '.join(registered_names(kind))}", default_text)


def add_config(parser: Parser, default: str | None) -> argparse.Action:
    """``--config``: a YAML training config file or the name of a shipped one."""
    def text() -> str:
        from cirlab.training.config import shipped_configs

        return f"YAML training config file, or a shipped config name: {', '.join(shipped_configs())}"

    action = parser.add_argument("--config", default=default, metavar="CONFIG")
    return describe(action, text, default or "none: the built-in defaults")


def add_set(parser: Parser) -> argparse.Action:
    """``--set KEY=VALUE``: override any training config key (repeatable)."""
    return parser.add_argument("--set", dest="set_options", action="append", default=[], metavar="KEY=VALUE",
                               help="override a training config key (repeatable; the value is read as YAML; a "
                                    "dotted key sets one option), e.g. --set loss_options.margin=0.2")


def add_strategies(parser: Parser, default: Sequence[str] | None = DEFAULT_STRATEGIES,
                   default_text: Text | None = None) -> argparse.Action:
    """``--strategies``: comma-separated negative samplers, one run each."""
    action = parser.add_argument("--strategies", type=name_list, default=list(default) if default else None,
                                 metavar="LIST")
    return describe(action, lambda: f"comma-separated negative samplers, one run each: "
                                     f"{', '.join(registered_names('negatives'))}",
                    default_text or ",".join(DEFAULT_STRATEGIES))


def add_image_handling(parser: Parser, preprocess: str | None = None, target_ratio: float | None = None,
                       missing: str | None = None, *, defaults_of: str | None = None) -> None:
    """``--preprocess``, ``--target-ratio`` and ``--missing``: how images are prepared, and what a missing or
    corrupt one does (choices from :mod:`cirlab.data`). An option whose default is ``None`` is left to the
    function ``defaults_of`` (``"module:function"``), whose own default the help shows."""
    from cirlab.data import PREPROCESS_KINDS, MissingPolicy

    def shown(value: Any, name: str) -> Text | None:
        return str(value) if value is not None else signature_default(defaults_of, name) if defaults_of else None

    action = parser.add_argument("--preprocess", choices=PREPROCESS_KINDS, default=preprocess, metavar="KIND")
    describe(action, "image preprocessing: targetpad (CLIP4Cir's padding to --target-ratio, then the encoder's "
                     "transform) or encoder (the encoder's transform alone)", shown(preprocess, "preprocess"))
    action = parser.add_argument("--target-ratio", type=float, default=target_ratio, metavar="X")
    describe(action, "aspect ratio that targetpad pads to", shown(target_ratio, "target_ratio"))
    action = parser.add_argument("--missing", choices=[policy.value for policy in MissingPolicy], default=missing,
                                 metavar="POLICY")
    describe(action, "missing or corrupt images: error (stop, naming them) or skip (leave out their triplets, "
                     "with counts)", shown(missing, "missing"))


def given(args: argparse.Namespace, *names: str) -> dict[str, Any]:
    """The options ``names`` that were given (not ``None``), as keyword arguments: those left out keep the
    library function's own defaults, which the help shows (:func:`signature_default`)."""
    return {name: getattr(args, name) for name in names if getattr(args, name) is not None}


def signature_default(function: str, name: str) -> Callable[[], str]:
    """A function giving the default of parameter ``name`` of ``function`` (``"module:function"``), for a help
    text; the module is imported only then."""
    def shown() -> str:
        import inspect

        module, _, attribute = function.partition(":")
        return str(inspect.signature(getattr(importlib.import_module(module), attribute)).parameters[name].default)

    return shown


def add_quiet(parser: Parser, default: Any = False) -> argparse.Action:
    """``--quiet``: no progress and no status lines on stderr (results and warnings still show)."""
    return parser.add_argument("--quiet", "-q", action="store_true", default=default,
                               help="no progress or status lines on stderr, only warnings and errors "
                                    "(CIRLAB_NO_PROGRESS=1 turns off progress alone)")


def add_engine_arguments(parser: argparse.ArgumentParser) -> None:
    """``--index`` and the combiner to query with, ``--checkpoint`` or a parameter-free ``--combiner``
    (``cirlab search`` and ``cirlab serve``)."""
    parser.add_argument("--index", type=Path, required=True, metavar="DIR", help="index folder, from `cirlab index`")
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--checkpoint", type=Path, metavar="PATH",
                       help="training run folder (its best/ is used) or combiner folder")
    which.add_argument("--combiner", default=None, metavar="NAME",
                       help="a parameter-free combiner instead of a checkpoint: sum")
