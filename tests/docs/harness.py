"""Running the documentation's commands: the workspace they run in, its fixtures, and one runner per program.

The :class:`Workspace` is a scratch folder that stands for the user's checkout. It holds, under the names
the docs use, what a session builds once with the CLI itself:

* ``data/tiny``: ``cirlab synth --preset tiny`` (3 x 40 images of 48 px);
* ``features/tiny``: ``cirlab extract`` of it with ``cirlab-vit-tiny`` (random init, no download);
* ``runs/tiny``: ``cirlab train --config synthetic`` for one epoch on that cache;
* ``index/tiny``: ``cirlab index`` of that cache;
* ``FIQ``: a FashionIQ folder made of the real annotation files in ``../shared/data/fashioniq`` cut to the
  first triplets of every caption file, with a placeholder image (a solid colour) for every image id
  they name; without those files, the synthetic tiny data set (the same layout) stands in;
* ``CIRR``: a CIRR folder made of the real val and test1 annotation files in ``../shared/data/cirr`` cut to
  their first queries, with a placeholder image for every image those queries name; without those files, a
  small hand-made CIRR folder stands in;
* ``photo.jpg``: a placeholder photo to upload; ``docs/images/``: the folder some docs commands write into.

Documented commands run in that folder: ``cirlab`` in-process through :func:`cirlab.cli.main`;
``torchrun``, ``python`` and ``curl`` as subprocesses; ``cirlab serve`` as a subprocess that is started
and asked for ``/health`` and ``/`` within a bounded deadline (the latest server of each documented port
is kept until the page ends, for the page's ``curl`` commands). A command first runs the commands
before it on the same page (each at most once, servers only for ``curl``), since a page's commands
build on each other (``cirlab extract`` then ``cirlab train`` on its cache). When the next page starts,
what the last one wrote is removed and the fixtures are kept, so that disk use stays at one page's worth.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import traceback
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from cirlab.cli import main
from tests.builders import write_image, write_split
from tests.conftest import SHARED_FASHIONIQ
from tests.docs import adaptations
from tests.docs.adaptations import Override, Rule
from tests.docs.markdown import Block, Command

#: How each program of the docs is run.
PROGRAMS = {"cirlab": "cirlab", ".venv/bin/cirlab": "cirlab", "python": "python", "python3": "python",
            ".venv/bin/python": "python", "torchrun": "torchrun", "curl": "curl"}
#: Triplets taken from the start of each real caption file for the ``FIQ`` folder.
FIQ_TRIPLETS = {"train": 12, "val": 8, "test": 4}
#: Queries taken from the start of each real CIRR caption file for the ``CIRR`` folder, and where its images go.
CIRR_QUERIES = {"val": 8, "test1": 4}
CIRR_FOLDERS = {"val": "dev", "test1": "test1"}
FIXTURE_COMMANDS: tuple[tuple[str, ...], ...] = (
    ("synth", "--out", "data/tiny", "--preset", "tiny"),
    ("extract", "--data", "data/tiny", "--model", "cirlab-vit-tiny", "--out", "features/tiny", "--workers", "0"),
    ("train", "--config", "synthetic", "--features", "features/tiny", "--out", "runs/tiny", "--epochs", "1",
     "--batch-size", "16", "--no-tensorboard", "--set", "negatives_options.near_duplicate_threshold=null"),
    ("index", "--features", "features/tiny", "--out", "index/tiny"),
)
#: What :meth:`Workspace.build` makes, kept whole while each page's own outputs are removed after the page.
FIXTURES = ("data/tiny", "features/tiny", "runs/tiny", "index/tiny", "FIQ", "CIRR", "photo.jpg", "docs/images")
SERVER_DEADLINE_S = 180.0
SUBPROCESS_TIMEOUT_S = 600
ENV_ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")


@dataclass
class Outcome:
    """What a command did: its exit status and output."""

    returncode: int
    stdout: str
    stderr: str


@dataclass
class Prepared:
    """A documented command in the form the test runs, with the adaptations that made it."""

    program: str  # cirlab, serve, torchrun, python, curl
    argv: list[str]  # as run (for cirlab: the arguments after `cirlab`)
    env: dict[str, str] = field(default_factory=dict)
    launcher: list[str] = field(default_factory=list)  # torchrun's own options
    applied: list[Override | Rule] = field(default_factory=list)
    doc_port: int = 8000  # serve: the port the docs name

    @property
    def cirlab_args(self) -> list[str]:
        """The arguments of the ``cirlab`` command (in-process, served or under torchrun)."""
        return self.argv if self.program in ("cirlab", "serve", "torchrun") else []

    def display(self) -> str:
        if self.program == "torchrun":
            return " ".join(["torchrun", *self.launcher, "-m", "cirlab", *self.argv])
        return " ".join(["cirlab", *self.argv] if self.cirlab_args else self.argv)


def prepare(command: Command, values: dict[str, str]) -> Prepared | Rule:
    """The runnable form of ``command`` (see :mod:`tests.docs.adaptations`), or the rule that excludes it.

    Raises ValueError for a command whose program the doc tests cannot run.
    """
    argv = list(command.argv)
    env: dict[str, str] = {}
    while argv and ENV_ASSIGNMENT.match(argv[0]):
        name, value = argv.pop(0).split("=", 1)
        env[name] = value
    applied: list[Override | Rule] = []
    wrapper = adaptations.matching(adaptations.WRAPPERS, tuple(argv))
    if wrapper:
        argv, applied = argv[len(wrapper.doc.split()):], [wrapper]
    excluded = adaptations.matching(adaptations.EXCLUDED, tuple(argv))
    if excluded:
        return excluded
    if command.source == "table":
        argv = list(adaptations.drop_optional(tuple(argv)))
    text = " ".join(argv)
    program = PROGRAMS.get(argv[0]) if argv else None
    if program is None:
        raise ValueError(f"{command.where}: no runner for `{command.text}`: run it or list it in EXCLUDED")
    argv = [adaptations.substitute(word, values) for word in argv]

    def extend(words: list[str], name: str) -> list[str]:
        found = adaptations.overrides_for(name, text)
        applied.extend(found)
        return words + [arg.format_map(values) for override in found for arg in override.args]

    if program == "torchrun":
        split = argv.index("-m") if "-m" in argv else len(argv)
        if argv[split + 1: split + 2] != ["cirlab"]:
            raise ValueError(f"{command.where}: only `torchrun ... -m cirlab COMMAND` is run: `{command.text}`")
        cirlab_args = argv[split + 2:]
        return Prepared("torchrun", extend(cirlab_args, f"cirlab {cirlab_args[0]}"), env,
                        launcher=extend(argv[1:split], "torchrun"), applied=applied)
    if program == "cirlab":
        doc_port = int(argv[argv.index("--port") + 1]) if "--port" in argv else 8000
        kind = "serve" if argv[1] == "serve" else "cirlab"
        return Prepared(kind, extend(argv[1:], f"cirlab {argv[1]}"), env, applied=applied, doc_port=doc_port)
    if program == "curl":
        return Prepared("curl", extend(argv, "curl"), env, applied=applied)
    return Prepared("python", [sys.executable, *argv[1:]], env, applied=applied)


class Server:
    """A ``cirlab serve`` subprocess on a loopback port."""

    def __init__(self, args: list[str], port: int, cwd: Path, log: Path) -> None:
        self.url = f"http://127.0.0.1:{port}"
        self.log = log
        with log.open("wb") as sink:
            self.process = subprocess.Popen([sys.executable, "-m", "cirlab", *args], cwd=cwd, stdout=sink,
                                            stderr=subprocess.STDOUT)

    def wait_until_healthy(self) -> Outcome:
        """Poll ``/health`` until it answers (the process exiting or the deadline ends the wait), then fetch ``/``."""
        deadline = time.monotonic() + SERVER_DEADLINE_S
        while True:
            try:
                self.process.wait(timeout=0.2)
                return Outcome(self.process.returncode, "", f"the server exited:\n{self.output()}")
            except subprocess.TimeoutExpired:
                pass
            try:
                health = json.loads(_get(self.url + "/health"))
                page = _get(self.url + "/")
                return Outcome(0 if health.get("status") == "ok" and "<html" in page.lower() else 1,
                               json.dumps(health), self.output())
            except (urllib.error.URLError, ConnectionError):
                if time.monotonic() > deadline:
                    return Outcome(1, "", f"no answer from {self.url}/health in {SERVER_DEADLINE_S:.0f} s:\n"
                                          f"{self.output()}")

    def output(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


class Workspace:
    """The scratch checkout the documented commands run in (see the module docstring)."""

    def __init__(self, root: Path, pages: dict[str, list[Command]]) -> None:
        self.root = root
        self.pages = pages  # runnable commands of each page, in page order
        self.values: dict[str, str] = {}
        self.outcomes: dict[Command, tuple[Prepared, Outcome]] = {}
        self.servers: dict[int, Server] = {}  # by the port the docs name
        self.fixture_paths: set[Path] = set()  # what build() made, fixtures and the folders above them
        self.page: str | None = None  # the page whose commands ran last

    # ------------------------------------------------------------------------------------- fixtures
    def build(self) -> None:
        """Make the session's fixtures (see the module docstring)."""
        for args in FIXTURE_COMMANDS:
            self.run_fixture(list(args))
        self.build_fiq(self.root / "FIQ")
        self.build_cirr(self.root / "CIRR")
        write_image(self.root / "photo.jpg", (180, 40, 90), size=(40, 50))
        (self.root / "docs" / "images").mkdir(parents=True)
        triplets = json.loads((self.root / "data/tiny/captions/cap.dress.val.json").read_text(encoding="utf-8"))
        self.values["reference"] = triplets[0]["candidate"]
        self.fixture_paths = {path for fixture in FIXTURES for path in (self.root / fixture, *(
            self.root / fixture).parents) if self.root in path.parents}

    def build_fiq(self, out: Path) -> None:
        """The first triplets of the real annotation files, with placeholder images; else the tiny synthetic set."""
        if not (SHARED_FASHIONIQ / "captions").is_dir():
            self.run_fixture(["synth", "--out", str(out), "--preset", "tiny"])
            return
        for captions in sorted((SHARED_FASHIONIQ / "captions").glob("cap.*.*.json")):
            _, category, split, _ = captions.name.split(".")
            triplets = json.loads(captions.read_text(encoding="utf-8"))[: FIQ_TRIPLETS[split]]
            ids = list(dict.fromkeys(i for t in triplets for i in (t["candidate"], t.get("target")) if i))
            write_split(out, category, split, ids, triplets)
            for image_id in ids:
                colour = tuple(hashlib.sha256(image_id.encode()).digest()[:3])
                write_image(out / "images" / f"{image_id}.jpg", colour)

    def build_cirr(self, out: Path) -> None:
        """The first queries of the real CIRR val and test1 files, with placeholder images; else a hand-made one."""
        from tests.data.cirr_builders import SHARED_CIRR, make_cirr

        if not (SHARED_CIRR / "captions").is_dir():
            make_cirr(out)
            return
        for split, count in CIRR_QUERIES.items():
            queries = json.loads((SHARED_CIRR / "captions" / f"cap.rc2.{split}.json").read_text(encoding="utf-8"))
            queries = queries[:count]
            names = list(dict.fromkeys(name for q in queries for name in (
                q["reference"], *([q["target_hard"]] if "target_hard" in q else []), *q["img_set"]["members"],
                *q.get("target_soft", {}))))
            paths = {name: f"./{CIRR_FOLDERS[split]}/{name}.png" for name in names}
            for name, relative in paths.items():
                write_image(out / relative, tuple(hashlib.sha256(name.encode()).digest()[:3]))
            for folder, file_name, content in (("captions", f"cap.rc2.{split}.json", queries),
                                               ("image_splits", f"split.rc2.{split}.json", paths)):
                (out / "cirr" / folder).mkdir(parents=True, exist_ok=True)
                (out / "cirr" / folder / file_name).write_text(json.dumps(content), encoding="utf-8")

    def run_fixture(self, args: list[str]) -> None:
        outcome = self.run_cli(args)
        if outcome.returncode != 0:
            raise RuntimeError(f"fixture `cirlab {' '.join(args)}` failed:\n{outcome.stderr}")

    # ------------------------------------------------------------------------------------- running
    def run(self, command: Command) -> tuple[Prepared, Outcome]:
        """Run ``command`` once, after the commands before it on its page."""
        if command.path != self.page:
            self.clear_page()
            self.page = command.path
        for earlier in self.pages[command.path]:
            if earlier == command:
                break
            needed = command.argv[0] == "curl" or not _is_serve(earlier)  # a server writes nothing others read
            if needed and earlier not in self.outcomes:
                self._run(earlier)
        return self.outcomes.get(command) or self._run(command)

    def _values(self) -> dict[str, str]:
        """The session's values, a free port and the URL of the server on the docs' default port."""
        server = self.servers.get(8000)
        return {**self.values, "free_port": str(free_port()),
                "server_url": server.url if server else "http://127.0.0.1:8000"}

    def _run(self, command: Command) -> tuple[Prepared, Outcome]:
        values = self._values()
        prepared = prepare(command, values)
        assert isinstance(prepared, Prepared), f"{command.where}: excluded commands are not run"
        if prepared.program == "cirlab":
            outcome = self.run_cli(prepared.argv, prepared.env)
        elif prepared.program == "serve":
            outcome = self.start_server(prepared, int(values["free_port"]))
        elif prepared.program == "torchrun":
            outcome = self.run_process([sys.executable, "-m", "torch.distributed.run", *prepared.launcher,
                                        "-m", "cirlab", *prepared.argv], prepared.env)
        else:
            outcome = self.run_process(prepared.argv, prepared.env)
        self.outcomes[command] = (prepared, outcome)
        return prepared, outcome

    def run_cli(self, args: list[str], env: dict[str, str] | None = None) -> Outcome:
        """``cirlab ARGS`` in this process, in the workspace."""
        out, err = io.StringIO(), io.StringIO()
        with self.inside(env), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = main(args)
            except SystemExit as exc:  # argparse errors and --help
                code = exc.code if isinstance(exc.code, int) else int(exc.code is not None)
            except Exception:  # a crash fails this command, not the later commands of its page
                code = 1
                err.write(traceback.format_exc())
        return Outcome(code, out.getvalue(), err.getvalue())

    def run_python(self, block: Block) -> str:
        """Execute a Python block (adapted) in this process, in the workspace; returns what it printed."""
        out = io.StringIO()
        code = adaptations.python_source(block.path, block.text, self._values())
        with self.inside(), contextlib.redirect_stdout(out):
            exec(compile(code, block.where, "exec"), {"__name__": "__doc_block__"})
        return out.getvalue()

    def run_process(self, argv: list[str], env: dict[str, str]) -> Outcome:
        done = subprocess.run(argv, cwd=self.root, env={**os.environ, **env}, capture_output=True, text=True,
                              timeout=SUBPROCESS_TIMEOUT_S, check=False)
        return Outcome(done.returncode, done.stdout, done.stderr)

    def start_server(self, prepared: Prepared, port: int) -> Outcome:
        """Start ``cirlab serve``, wait until it answers, and keep it as the server of the port the docs name."""
        previous = self.servers.pop(prepared.doc_port, None)
        if previous:
            previous.stop()
        logs = self.root / "logs"
        logs.mkdir(exist_ok=True)
        server = Server(prepared.argv, port, self.root, logs / f"serve-{port}.log")
        outcome = server.wait_until_healthy()
        if outcome.returncode == 0:
            self.servers[prepared.doc_port] = server
        else:
            server.stop()
        return outcome

    def clear_page(self) -> None:
        """Stop the last page's servers and remove what its commands wrote, keeping the fixtures whole.

        A page's commands build only on each other and on the fixtures, so its outputs are not needed once
        the next page starts; removing them keeps the suite's disk use to one page's worth (the finetuning
        and demo pages write hundreds of megabytes).
        """
        self.close()
        self.outcomes.clear()
        fixtures = [self.root / fixture for fixture in FIXTURES]
        for path in sorted(self.root.rglob("*"), key=lambda p: len(p.parts)):
            if path in self.fixture_paths or any(f in path.parents for f in fixtures) or not (
                    path.exists() or path.is_symlink()):
                continue
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink()

    def close(self) -> None:
        for server in self.servers.values():
            server.stop()
        self.servers.clear()

    @contextlib.contextmanager
    def inside(self, env: dict[str, str] | None = None) -> Iterator[None]:
        """The workspace as the working directory, with ``env`` set, for the duration of a command."""
        saved_cwd, saved_env = Path.cwd(), {name: os.environ.get(name) for name in env or {}}
        os.chdir(self.root)
        os.environ.update(env or {})
        try:
            yield
        finally:
            os.chdir(saved_cwd)
            for name, value in saved_env.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value


def _is_serve(command: Command) -> bool:
    return "serve" in command.argv[:3] and command.argv[0] in ("cirlab", ".venv/bin/cirlab")


def free_port() -> int:
    """A loopback port nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.read().decode("utf-8", errors="replace")


def curl_available() -> bool:
    return shutil.which("curl") is not None
