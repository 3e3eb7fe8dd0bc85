"""How each documented command is adapted to run offline, on CPU, on tiny data, in seconds: every change in one table.

A command runs in a scratch working directory (the *workspace*), so the relative paths of the docs
(``data/synth``, ``features/tiny``, ``runs/hard``, ``FIQ``) are used exactly as written; the workspace
already holds the session's fixtures under the names the docs use (see ``harness.Workspace``).
Then, in this order:

1. the leading ``NAME=value`` assignments become the command's environment, and a timing wrapper
   (:data:`WRAPPERS`) is dropped;
2. a command listed in :data:`EXCLUDED` is not run, for the reason given there;
3. in a synopsis from a table (``cirlab synth --out DATA [--seed S]``) the ``[optional]`` parts are dropped;
4. :data:`SUBSTITUTIONS` replace placeholders, downloads and absolute paths, word by word;
5. :data:`OVERRIDES` append options that shrink the work (a later option wins in argparse, and a
   later ``--set`` wins over an earlier one); under ``torchrun`` the launcher's and the ``cirlab``
   command's overrides are appended to their own parts.

Python blocks get :data:`PYTHON_EDITS` (and the substitutions) or are listed in :data:`PYTHON_EXCLUDED`.
``{name}`` in a replacement is filled from the workspace's values (an image id, a port, a URL).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class Substitution:
    """``doc`` (as a whole word of an argument) becomes ``test`` in every command."""

    doc: str
    test: str
    why: str

    def pattern(self) -> re.Pattern[str]:
        before = r"(?<![\w])" if self.doc[0].isalnum() else ""
        after = r"(?![\w])" if self.doc[-1].isalnum() else ""
        return re.compile(before + re.escape(self.doc) + after)


@dataclass(frozen=True)
class Override:
    """Options appended to every documented ``program command`` (e.g. ``cirlab train``), or only to
    those whose documented text contains ``when``."""

    command: str
    args: tuple[str, ...]
    why: str
    when: str = ""

    def applies(self, command: str, text: str) -> bool:
        return command == self.command and self.when in text


@dataclass(frozen=True)
class Rule:
    """A command (by its leading words) or text that is handled as ``why`` says."""

    doc: str
    why: str


@dataclass(frozen=True)
class PythonEdit:
    """In the Python block of ``path``, the text ``doc`` becomes ``test``."""

    path: str
    doc: str
    test: str
    why: str


TINY_MODEL_WHY = ("RN50x4's openai weights are a download: cirlab's tiny ModifiedResNet (cirlab-rn-tiny, random "
                  "init) stands in; the command's other options stay")

OTHER_ID_WHY = "an image id of the full-size benchmark: a dress val image of the tiny one"

SUBSTITUTIONS: tuple[Substitution, ...] = (
    Substitution("DATA", "data/tiny", "README placeholder: the session's `cirlab synth --preset tiny` data set"),
    Substitution("ENC", "runs/readme-encoder", "README placeholder: written by the README's `cirlab pretrain` row"),
    Substitution("ENC2", "runs/readme-finetuned", "README placeholder: written by its `cirlab finetune` row"),
    Substitution("FEATS", "features/readme", "README placeholder: written by its `cirlab extract` row"),
    Substitution("RUN", "runs/readme", "README placeholder: written by its `cirlab train` row"),
    Substitution("SEED_RUN", "runs/readme-seed", "README placeholder: written by its seed-system `cirlab train` row"),
    Substitution("CMP", "cmp/readme", "README placeholder: written by its `cirlab compare` row"),
    Substitution("INDEX", "index/readme", "README placeholder: written by its `cirlab index` row"),
    Substitution("ID_OR_FILE", "{reference}", "README placeholder: a dress val image id of the tiny data set"),
    Substitution("FEATURES", "features/tiny", "a feature cache: the session's tiny cache"),
    Substitution("demo-output/features", "features/tiny",
                 "what `cirlab demo` leaves on disk: the session's tiny cache (the demo itself runs in "
                 "docs/results.md's commands)"),
    Substitution("demo-output/index", "index/demo", "a new index folder, written by the README's `cirlab index`"),
    Substitution("demo-output/compare/runs/semi-hard/seed-0", "runs/tiny", "a trained run: the session's tiny run"),
    Substitution("B0A1UPY882", "{reference}", OTHER_ID_WHY),
    Substitution("B0EPMJTXOM", "{reference}", OTHER_ID_WHY),
    Substitution("/tmp/", "tmp/", "absolute scratch paths go into the workspace"),
    Substitution("RN50x4", "cirlab-rn-tiny", TINY_MODEL_WHY),
    Substitution("openai", "none", TINY_MODEL_WHY),
    Substitution("http://127.0.0.1:8000", "{server_url}",
                 "the server that the page's `cirlab serve` (default port) started, on its free port"),
)

TINY_COMBINER = ("--set", "precision=fp32", "--set", "combiner_options.projection_dim=64",
                 "--set", "combiner_options.hidden_dim=128")
TINY_COMBINER_WHY = ("the config's fp16 autocast needs a GPU, and its 2560/5120 combiner is sized for 640-d RN50x4 "
                     "features: fp32 and a combiner of the tiny features' scale")
NO_NEAR_DUPLICATE_GUARD = ("--set", "negatives_options.near_duplicate_threshold=null")
NO_NEAR_DUPLICATE_WHY = ("features of a barely trained tiny encoder are nearly parallel, which the near-duplicate "
                         "guard reads as 'every image duplicates the target' (as `cirlab demo --tiny` does)")

OVERRIDES: tuple[Override, ...] = (
    Override("cirlab synth", ("--preset", "tiny", "--images-per-category", "40", "--size", "48"),
             "the tiny preset's size (3 x 40 images of 48 px) instead of 3 x 1200 or more"),
    Override("cirlab pretrain", ("--epochs", "1", "--batch-size", "32", "--workers", "0", "--no-tensorboard"),
             "one epoch, images decoded in-process, no TensorBoard"),
    Override("cirlab finetune", ("--epochs", "1", "--batch-size", "16", "--workers", "0", "--no-tensorboard"),
             "one epoch, images decoded in-process, no TensorBoard"),
    Override("cirlab finetune", ("--pretrained", "none"), TINY_MODEL_WHY + " (finetune's default tag is openai)",
             when="--model RN50x4"),
    Override("cirlab finetune", ("--negatives-option", "near_duplicate_threshold=null"), NO_NEAR_DUPLICATE_WHY,
             when="--negatives"),
    Override("cirlab extract", ("--workers", "0"), "images decoded in-process: worker processes cost more than "
                                                   "the tiny data set"),
    Override("cirlab extract", ("--precision", "fp32"), "fp16 autocast needs a GPU", when="--precision fp16"),
    Override("cirlab train", ("--epochs", "1", "--batch-size", "16", "--no-tensorboard", *NO_NEAR_DUPLICATE_GUARD),
             "one epoch of batch 16, no TensorBoard; " + NO_NEAR_DUPLICATE_WHY),
    Override("cirlab train", TINY_COMBINER, TINY_COMBINER_WHY, when="--config fashioniq-rn50x4"),
    Override("cirlab compare", ("--epochs", "1", "--seeds", "1", "--set", "batch_size=16", "--queries", "0",
                                *NO_NEAR_DUPLICATE_GUARD),
             "one seed and one epoch of batch 16 per run, no query figures (drawing them is half of a tiny "
             "comparison's time; the demo's comparison draws them); " + NO_NEAR_DUPLICATE_WHY),
    Override("cirlab compare", TINY_COMBINER, TINY_COMBINER_WHY, when="--config fashioniq-rn50x4"),
    Override("cirlab demo", ("--tiny", "--size", "40", "--epochs", "1", "--pretrain-epochs", "1"),
             "the demo's toy size (tiny data set, 40 images per category even where the command names another "
             "size) with one epoch per stage; the documented options stay"),
    Override("cirlab bench", ("--quick", "--only", "pml"),
             "the quick sizes of the cheapest benchmark: a full run takes minutes (the command's own options "
             "are parsed and kept, a later --only wins)"),
    Override("cirlab bench", ("--device", "cpu"), "the tests run on CPU", when="--device cuda"),
    Override("cirlab serve", ("--port", "{free_port}"),
             "a free loopback port; the server is started, asked for /health and /, kept for the page's curl "
             "commands and stopped at the end"),
    Override("torchrun", ("--standalone", "--nproc_per_node", "2"),
             "two CPU processes (gloo) with a free rendezvous port instead of 4 GPUs"),
    Override("curl", ("--fail-with-body",), "an HTTP error status fails the command"),
)

WRAPPERS: tuple[Rule, ...] = (
    Rule("time", "a timing wrapper: dropped, the command runs in-process"),
    Rule("/usr/bin/time -v", "a timing wrapper: dropped, the command runs in-process"),
)

EXCLUDED: tuple[Rule, ...] = (
    Rule("./scripts/demo.sh", "sets up .venv and runs the full-size demo (minutes): CI sets up the same .venv, "
                              "docs/results.md's `cirlab demo` commands run here at the toy size and tests/demo "
                              "runs the pipeline"),
    Rule("./scripts/test.sh", "sets up .venv and runs the whole test suite, this test included: CI runs it (.ci/run)"),
    Rule("pip install", "installs packages from the network"),
    Rule(".venv/bin/pytest", "runs test suites from inside a test: CI runs the whole suite"),
)

PYTHON_EDITS: tuple[PythonEdit, ...] = (
    PythonEdit("docs/synthetic-benchmark.md", 'SynthConfig.preset("default")', 'SynthConfig.preset("tiny")',
               "the tiny preset's size instead of 3 x 1200 images"),
    PythonEdit("docs/performance.md", "quick=False", "quick=True", "the quick sizes: a full mining run takes minutes"),
    PythonEdit("docs/performance.md", '"mining.200k.', '"mining.10k.',
               "the quick run's largest gallery is 10k (the figure's name is otherwise the same)"),
)

PYTHON_EXCLUDED: tuple[PythonEdit, ...] = (
    PythonEdit("docs/negative-sampling.md", "sampler = build_sampler(name, gallery, **options)", "",
               "the sampler contract's signature, not a program: tests/negatives run the contract on every sampler"),
)


def substitute(text: str, values: Mapping[str, str]) -> str:
    """``text`` with every :data:`SUBSTITUTIONS` applied and ``{name}`` fields filled from ``values``."""
    for substitution in SUBSTITUTIONS:
        text = substitution.pattern().sub(substitution.test.format_map(values).replace("\\", r"\\"), text)
    return text


def matching(rules: tuple[Rule, ...], argv: tuple[str, ...]) -> Rule | None:
    """The rule of ``rules`` whose words start ``argv``, if any."""
    return next((rule for rule in rules if list(argv[: len(rule.doc.split())]) == rule.doc.split()), None)


def drop_optional(argv: tuple[str, ...]) -> tuple[str, ...]:
    """A synopsis without its ``[optional]`` parts."""
    kept, depth = [], 0
    for word in argv:
        depth += word.count("[")
        if depth == 0:
            kept.append(word)
        depth -= word.count("]")
    return tuple(kept)


def overrides_for(command: str, text: str) -> list[Override]:
    """The overrides of ``command`` (``cirlab train``, ``torchrun``, ``curl``) for the documented ``text``."""
    return [override for override in OVERRIDES if override.applies(command, text)]


def python_source(path: str, code: str, values: Mapping[str, str]) -> str:
    """The code of a Python block of ``path`` as the test runs it."""
    for edit in PYTHON_EDITS:
        if edit.path == path:
            code = code.replace(edit.doc, edit.test)
    return substitute(code, values)


def python_exclusion(path: str, code: str) -> PythonEdit | None:
    """The :data:`PYTHON_EXCLUDED` entry of a Python block, if it has one."""
    return next((e for e in PYTHON_EXCLUDED if e.path == path and e.doc in code), None)
