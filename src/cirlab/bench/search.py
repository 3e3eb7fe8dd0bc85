"""Search latency: faiss exact and IVF indexes built by ``cirlab index``, and the HTTP service on loopback.

Galleries are clustered random 64-d features (the dimension of ``cirlab-vit-tiny``, whose text tower
the HTTP path runs; 64-d also keeps a million-item gallery within memory and time), written as a feature
cache and indexed with :func:`cirlab.search.build_index`: ``flat`` (exact inner product) and ``ivf``
(about sqrt(N) / 2 lists, the default nprobe), whose recall@10 against exact search is the library's own
measurement at build time. The gallery is split into three categories of a third each (dress, shirt,
toptee, as FashionIQ's galleries are). Queries are single vectors near gallery items, searched one at a
time with one faiss thread, as ``cirlab serve`` runs, over the whole gallery and within one category (a
faiss ID selector, the search page's category filter). The baseline is a bare one-thread torch
matrix-vector product and top-10 over the same normalised array.

The service is timed on the 100k gallery: :class:`~cirlab.search.SearchEngine` (text encoder, ``sum``
combiner, exact index) in-process, then the same queries as ``POST /api/search`` through a real uvicorn
server on 127.0.0.1 (:class:`~cirlab.serve.BackgroundServer`) that answers each query on its own
(``--max-batch 1``: no batching window), one client, one request at a time; faiss uses one thread and
torch its default, as ``cirlab serve`` does. ``GET /health`` on the same server, timed in the same rounds,
is the cost of the HTTP transport alone.

Then the service under load, batched (``cirlab serve``'s default micro-batching) against one query at a
time (``--max-batch 1``), two servers over the same engine: for 1, 8 and 32 clients at once, each a
thread with its own connection, the same requests (half of them within one category) go to both servers
in turns, round after round (which one goes first alternates); text queries (a reference id) and image
uploads (a PNG that the image encoder encodes) separately. Each round gives requests/s and p50/p99
latency per path, and the batched path's ratios to the one-at-a-time path of the same round. The clients
run in a process of their own (:class:`ClientProcess`), as real clients would: in the server's process their
request encoding and response parsing would hold the same interpreter lock as the server's request handling.
They still share the machine's cores with the server.
"""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from cirlab.bench.context import TINY_MODEL, BenchContext
from cirlab.bench.fixtures import CAPTIONS, clustered_features, queries_near, write_tiny_fashioniq
from cirlab.bench.mining import size_label
from cirlab.bench.report import BenchResult, Figure
from cirlab.bench.timing import Stat, latency_percentiles

if TYPE_CHECKING:
    from cirlab.encoders import Encoder
    from cirlab.serve.batching import MicroBatcher

NAME = "search"
TITLE = "faiss query latency (exact and IVF); the search service's latency and load, batched and one at a time"

DIM = 64
TOP = 10
CATEGORIES: tuple[str, ...] = ("dress", "shirt", "toptee")
#: The category that searches "within one category" are restricted to.
FILTER = "shirt"
#: Concurrent clients of the load test.
LOAD_CLIENTS: tuple[int, ...] = (1, 8, 32)
#: The two ways the service answers, as the load test names them.
PATHS: tuple[str, ...] = ("one", "batched")


@contextmanager
def single_threaded(torch_too: bool = True) -> Iterator[None]:
    """One faiss (OpenMP) thread inside the block, as ``cirlab serve`` searches, and one torch thread
    when ``torch_too`` (for a baseline on equal terms)."""
    import faiss

    faiss_threads, torch_threads = faiss.omp_get_max_threads(), torch.get_num_threads()
    faiss.omp_set_num_threads(1)
    if torch_too:
        torch.set_num_threads(1)
    try:
        yield
    finally:
        faiss.omp_set_num_threads(faiss_threads)
        torch.set_num_threads(torch_threads)


def interleaved_latencies(works: dict[str, Callable[[Any], object]], items: Sequence[Any], rounds: int,
                          warmup: int) -> dict[str, list[list[float]]]:
    """Per work, per round, the seconds of each single call; in each round every work runs its share of
    ``items`` before the next work does, so a burst of load hits all of them."""
    for item in items[:warmup]:
        for work in works.values():
            work(item)
    chunks = np.array_split(np.arange(warmup, len(items)), rounds)
    seconds: dict[str, list[list[float]]] = {name: [] for name in works}
    for chunk in chunks:
        for name, work in works.items():
            times = []
            for position in chunk.tolist():
                start = time.perf_counter()
                work(items[position])
                times.append(time.perf_counter() - start)
            seconds[name].append(times)
    return seconds


def write_gallery_cache(root: Path, features: np.ndarray, weights_hash: str, seed: int) -> Path:
    """A feature cache whose val splits are ``features``, a third per category of :data:`CATEGORIES` (in order),
    described as made by the tiny encoder."""
    from cirlab.features.cache import write_cache

    thirds = np.array_split(np.arange(len(features)), len(CATEGORIES))
    manifest = {"model": TINY_MODEL, "pretrained": None, "checkpoint": None, "weights_hash": weights_hash,
                "encoder": {"seed": seed}, "preprocess": {"kind": "targetpad", "target_ratio": 1.25},
                "precision": "fp32", "data_fingerprint": f"cirlab-bench-{len(features)}x{features.shape[1]}-{seed}"}
    return write_cache(root, image_ids=[f"G{n:07d}" for n in range(len(features))], image_features=features,
                       split_rows={f"{c}.val": rows.tolist() for c, rows in zip(CATEGORIES, thirds)}, triplets=[],
                       text_features=np.zeros((0, 4, features.shape[1]), np.float32), manifest=manifest)


@dataclass(frozen=True)
class LoadRun:
    """What one burst of requests gave: each request's seconds, how many failed, and the burst's wall time."""

    seconds: list[float]
    failed: int
    wall: float

    @property
    def requests_per_s(self) -> float:
        """Answered and failed requests per second of the burst."""
        return len(self.seconds) / self.wall


def concurrent_requests(url: str, forms: Sequence[dict[str, str | bytes]], clients: int) -> LoadRun:
    """POST every form of ``forms`` to ``/api/search`` from ``clients`` threads at once, each with its own
    connection (a ``bytes`` value is sent as a file upload under its field's name); returns each request's seconds,
    how many failed (no answer, or not 200) and the wall time from the moment every client is ready."""
    import httpx

    pending = iter(range(len(forms)))
    lock = threading.Lock()
    seconds: list[float] = []
    failed = [0]
    sessions = [httpx.Client(base_url=url, timeout=60.0) for _ in range(clients)]  # set up before the clock
    ready = threading.Barrier(clients + 1)

    def client(session: httpx.Client) -> None:
        ready.wait()
        while True:
            with lock:
                position = next(pending, None)
            if position is None:
                return
            fields = {name: value for name, value in forms[position].items() if isinstance(value, str)}
            files = {name: ("upload.png", value, "image/png") for name, value in forms[position].items()
                     if isinstance(value, bytes)}
            start = time.perf_counter()
            try:
                ok = session.post("/api/search", data=fields, files=files or None).status_code == 200
            except httpx.HTTPError:
                ok = False
            elapsed = time.perf_counter() - start
            with lock:
                seconds.append(elapsed)
                failed[0] += not ok

    threads = [threading.Thread(target=client, args=(session,)) for session in sessions]
    try:
        for thread in threads:
            thread.start()
        ready.wait()
        start = time.perf_counter()
        for thread in threads:
            thread.join()
        wall = time.perf_counter() - start
    finally:
        for session in sessions:
            session.close()
    return LoadRun(seconds, failed[0], wall)


class ClientProcess:
    """One spawned process that sends the load test's bursts (:func:`concurrent_requests`), so that the clients'
    Python work does not share the server's interpreter; it is started once and reused for every burst."""

    def __enter__(self) -> ClientProcess:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        self.pool = ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn"))
        self.pool.submit(_import_client).result()  # start-up (imports) before any burst is timed
        return self

    def __exit__(self, *exc: object) -> None:
        self.pool.shutdown()

    def burst(self, url: str, forms: Sequence[dict[str, str | bytes]], clients: int) -> LoadRun:
        """:func:`concurrent_requests` in the client process."""
        return self.pool.submit(concurrent_requests, url, forms, clients).result()


def _import_client() -> None:
    import httpx  # noqa: F401


def upload_images(folder: Path, count: int, seed: int) -> list[bytes]:
    """``count`` small garment-like PNG files (the tiny data set's kind), as bytes for uploads."""
    root = write_tiny_fashioniq(folder, count, 0, seed=seed)
    return [(root / "images" / f"B{n:07d}.png").read_bytes() for n in range(count)]


def add_latency_figures(result: BenchResult, prefix: str, seconds: dict[str, list[list[float]]],
                        descriptions: dict[str, str]) -> None:
    """p50/p99 (absolute) of each work over all rounds."""
    for name, description in descriptions.items():
        p50, p99 = latency_percentiles([s for chunk in seconds[name] for s in chunk])
        per_round = Stat.of(latency_percentiles(chunk)[0] for chunk in seconds[name])
        result.add(Figure(f"{prefix}{name}_p50_ms", p50, "ms", "absolute", f"{description}, median",
                          low=per_round.low, high=per_round.high))
        result.add(Figure(f"{prefix}{name}_p99_ms", p99, "ms", "absolute", f"{description}, 99th percentile"))


def p50_ratio(seconds: dict[str, list[list[float]]], numerator: str, denominator: str) -> Stat:
    """Per-round ratio of the two works' median latencies."""
    return Stat.of(np.median(a) / np.median(b) for a, b in zip(seconds[numerator], seconds[denominator]))


def run(ctx: BenchContext) -> BenchResult:
    """Index latency per gallery size, then the service's latency on the first gallery."""
    sizes = ctx.pick((100_000, 1_000_000), (100_000,))
    queries_per_size, rounds = ctx.pick(240, 60), 3
    encoder = ctx.encoder(TINY_MODEL)
    result = BenchResult(NAME, TITLE, settings={"galleries": [size_label(s) for s in sizes], "dim": DIM, "k": TOP,
                                                "queries": queries_per_size, "rounds": rounds, "threads": 1})
    for position, size in enumerate(sizes):
        folder = ctx.workdir / f"search-{size_label(size)}"
        index_dir, cache_dir = index_figures(ctx, result, size, folder, encoder.weights_hash(), queries_per_size,
                                             rounds, ctx.generator(50 + position))
        if position == 0:
            http_figures(ctx, result, index_dir, cache_dir, encoder, queries_per_size // 4, rounds)
        shutil.rmtree(folder, ignore_errors=True)
    return result


def index_figures(ctx: BenchContext, result: BenchResult, size: int, folder: Path, weights_hash: str, queries: int,
                  rounds: int, inputs: torch.Generator) -> tuple[Path, Path]:
    """Build both indexes of a ``size``-item gallery in ``folder`` and time them; returns the exact index's
    folder and the cache's."""
    from cirlab.search import GalleryIndex, build_index

    label = size_label(size)
    features = clustered_features(size, DIM, inputs, clusters=1000)
    cache_dir = write_gallery_cache(folder / "cache", features.numpy(), weights_hash, ctx.seed)
    with single_threaded(torch_too=False):  # on a loaded machine, faster than an OpenMP team that waits
        flat = build_index(cache_dir, folder / "flat", show_progress=False)
        ivf = build_index(cache_dir, folder / "ivf", kind="ivf", nlist=round(size**0.5 / 2), recall_queries=200,
                          seed=ctx.seed, show_progress=False)
    flat_index, ivf_index = GalleryIndex.load(flat.out), GalleryIndex.load(ivf.out)
    rows = torch.randint(0, size, (queries,), generator=inputs)
    vectors = queries_near(features[rows], inputs, noise=0.5).numpy()[:, None, :]  # one [1, d] query each
    gallery = features.contiguous()
    with single_threaded():
        seconds = interleaved_latencies({
            "flat": lambda q: flat_index.search(q, TOP),
            "ivf": lambda q: ivf_index.search(q, TOP),
            "bare": lambda q: torch.topk(gallery @ torch.from_numpy(q[0]), TOP),
            "flat_category": lambda q: flat_index.search(q, TOP, FILTER),
            "ivf_category": lambda q: ivf_index.search(q, TOP, FILTER),
        }, vectors, rounds=rounds, warmup=10)
    prefix = f"{label}."
    result.add(Figure.from_stat(f"{prefix}flat_over_bare", p50_ratio(seconds, "flat", "bare"), "x", "ratio",
                                "exact faiss search, median latency",
                                baseline="one-thread torch matvec + top-10, median"))
    result.add(Figure.from_stat(f"{prefix}ivf_speedup", p50_ratio(seconds, "flat", "ivf"), "x", "ratio",
                                "exact search median latency over IVF median latency", baseline="IVF search"))
    result.add(Figure.from_stat(f"{prefix}category_over_flat", p50_ratio(seconds, "flat_category", "flat"), "x",
                                "ratio", "exact search within one category (a third of the gallery), median latency",
                                baseline="exact search over the whole gallery, median"))
    result.add(Figure(f"{prefix}ivf_recall_at_10", float(ivf.recall_at_10), "fraction", "exact",
                      f"IVF (nlist {ivf.nlist}, nprobe {ivf.nprobe}) top 10 vs exact top 10"))
    add_latency_figures(result, prefix, seconds, {"flat": "exact faiss search", "ivf": "IVF faiss search",
                                                  "bare": "torch matvec + top-10",
                                                  "flat_category": "exact faiss search within one category",
                                                  "ivf_category": "IVF faiss search within one category"})
    result.settings[f"{label}.ivf"] = f"nlist {ivf.nlist}, nprobe {ivf.nprobe}"
    return flat.out, cache_dir


def http_figures(ctx: BenchContext, result: BenchResult, index_dir: Path, cache_dir: Path, encoder: Encoder,
                 requests: int, rounds: int) -> None:
    """In-process and HTTP latency of composed queries against the exact index, then the service under load."""
    try:
        import httpx

        from cirlab.serve import BackgroundServer, BatchSettings, create_app
    except ImportError as exc:  # the [serve] extra is not installed
        result.notes.append(f"HTTP latency not measured: {exc}")
        return
    from cirlab.combiners import build_combiner
    from cirlab.features.cache import FeatureCache
    from cirlab.search import GalleryIndex, SearchEngine

    engine = SearchEngine(GalleryIndex.load(index_dir), FeatureCache.open(cache_dir), build_combiner("sum", DIM),
                          encoder=encoder, device=str(ctx.device))
    engine.warm_up()
    ids = engine.index.ids
    rng = np.random.default_rng(ctx.seed)
    plan = [(ids[int(rng.integers(len(ids)))], CAPTIONS[int(rng.integers(len(CAPTIONS)))]) for _ in range(requests)]
    batching = BatchSettings()  # cirlab serve's default
    apps = {"one": create_app(engine, None, batching=BatchSettings(max_batch=1)),
            "batched": create_app(engine, None, batching=batching)}
    with single_threaded(torch_too=False), BackgroundServer(apps["one"]) as one, \
            BackgroundServer(apps["batched"]) as batched:
        with httpx.Client(base_url=one.url, timeout=60.0) as client:

            def over_http(query: tuple[str, str]) -> None:
                answer = client.post("/api/search", data={"reference_id": query[0], "text": query[1], "k": str(TOP)})
                answer.raise_for_status()

            seconds = interleaved_latencies({
                "engine": lambda q: engine.search(q[0], q[1], k=TOP),
                "http": over_http,
                "health": lambda _: client.get("/health").raise_for_status(),
            }, plan, rounds=rounds, warmup=5)
        uploads = upload_images(ctx.workdir / "search-uploads", 16, ctx.seed)
        load_figures(ctx, result, {"one": one.url, "batched": batched.url}, ids, uploads,
                     apps["batched"].state.batcher)
    result.settings["batching"] = f"window {batching.window_ms:g} ms, at most {batching.max_batch} queries"
    result.add(Figure.from_stat("http_over_engine", p50_ratio(seconds, "http", "engine"), "x", "ratio",
                                "HTTP POST /api/search (one query at a time), median latency",
                                baseline="the same query through SearchEngine.search in-process"))
    result.add(Figure.from_stat("http_over_health", p50_ratio(seconds, "http", "health"), "x", "ratio",
                                "HTTP POST /api/search (one query at a time), median latency",
                                baseline="GET /health on the same server (the transport alone)"))
    add_latency_figures(result, "", seconds, {"engine": "SearchEngine.search in-process (text encoder + sum + "
                                                        "exact faiss)", "http": "POST /api/search on 127.0.0.1",
                                              "health": "GET /health on 127.0.0.1"})
    result.settings["http_requests"] = requests


def load_forms(ids: Sequence[str], uploads: Sequence[bytes], count: int, seed: int) -> dict[str, list[dict[str, Any]]]:
    """``count`` search forms per kind of query: ``text`` (a reference id) and ``upload`` (a PNG file); each with
    a caption, half of them within one category."""
    rng = np.random.default_rng(seed)
    forms: dict[str, list[dict[str, Any]]] = {"text": [], "upload": []}
    for kind, forms_of_kind in forms.items():
        for _ in range(count):
            reference: dict[str, Any] = ({"reference_id": ids[int(rng.integers(len(ids)))]} if kind == "text"
                                         else {"reference_image": uploads[int(rng.integers(len(uploads)))]})
            forms_of_kind.append({**reference, "text": CAPTIONS[int(rng.integers(len(CAPTIONS)))],
                                  "category": CATEGORIES[int(rng.integers(len(CATEGORIES)))] if rng.random() < 0.5
                                  else "", "k": str(TOP)})
    return forms


def load_figures(ctx: BenchContext, result: BenchResult, urls: dict[str, str], ids: Sequence[str],
                 uploads: Sequence[bytes], batcher: MicroBatcher | None) -> None:
    """Requests/s and p50/p99 latency of the batched service against the one-query-at-a-time one, for text
    queries and image uploads, at each of :data:`LOAD_CLIENTS` clients. Both paths run in every round, in
    turns (the first path of a round alternates), so that a burst of load from elsewhere hits both."""
    requests, repeats = ctx.pick({"text": 96, "upload": 48}, {"text": 32, "upload": 16}), ctx.pick(5, 1)
    forms = load_forms(ids, uploads, max(requests.values()), ctx.seed + 1)
    with ClientProcess() as client_process:
        failed = _load_rounds(result, urls, forms, requests, repeats, batcher, client_process)
    result.add(Figure("load_failed_requests", failed, "count", "exact",
                      "requests of the load test without a 200 answer (0 = all answered)"))
    result.settings["load"] = (f"{'/'.join(map(str, LOAD_CLIENTS))} clients in a process of their own, "
                               f"{requests['text']} text and {requests['upload']} upload requests per round, "
                               f"{repeats} rounds")


def _load_rounds(result: BenchResult, urls: dict[str, str], forms: dict[str, list[dict[str, Any]]],
                 requests: dict[str, int], repeats: int, batcher: MicroBatcher | None,
                 client_process: ClientProcess) -> int:
    """Every kind of query at every number of clients, both paths in turns; returns the failed requests."""
    failed = 0
    for kind, count in requests.items():
        for clients in LOAD_CLIENTS:
            runs: dict[str, list[LoadRun]] = {path: [] for path in PATHS}
            batches = (0, 0)
            for round_index in range(1 + repeats):  # the first round warms both servers up
                if round_index == 1 and batcher is not None:
                    batches = (batcher.batches, batcher.items)
                for path in PATHS if round_index % 2 else PATHS[::-1]:
                    run = client_process.burst(urls[path], forms[kind][:count], clients)
                    failed += run.failed
                    if round_index:
                        runs[path].append(run)
            if batcher is not None and batcher.batches > batches[0]:
                mean_batch = (batcher.items - batches[1]) / (batcher.batches - batches[0])
                result.add(Figure(f"load.{kind}.{clients}c.mean_batch", mean_batch, "queries", "absolute",
                                  f"queries per batch of the batched service, {kind} queries from {clients} "
                                  f"client{'s' if clients > 1 else ''}"))
            add_load_figures(result, f"load.{kind}.{clients}c.", runs, f"{kind} queries from {clients} client"
                                                                        f"{'s at once' if clients > 1 else ''}")
    return failed


def add_load_figures(result: BenchResult, prefix: str, runs: dict[str, list[LoadRun]], what: str) -> None:
    """The batched path's requests/s and p99 ratios to the one-at-a-time path (round by round), and each path's
    requests/s (median over rounds) and p50/p99 latency (over every request of the rounds)."""
    one, batched = runs["one"], runs["batched"]
    baseline = "one query at a time (--max-batch 1), same requests, same rounds"
    result.add(Figure.from_stat(f"{prefix}batched_speedup",
                                Stat.of(b.requests_per_s / o.requests_per_s for b, o in zip(batched, one)), "x",
                                "ratio", f"requests/s of the batched service, {what}", baseline=baseline))
    result.add(Figure.from_stat(f"{prefix}batched_p99_ratio",
                                Stat.of(latency_percentiles(b.seconds)[1] / latency_percentiles(o.seconds)[1]
                                        for b, o in zip(batched, one)), "x", "ratio",
                                f"99th-percentile latency of the batched service, {what}", baseline=baseline))
    for path in PATHS:
        label = "batched" if path == "batched" else "one query at a time"
        p50, p99 = latency_percentiles([s for run in runs[path] for s in run.seconds])
        result.add(Figure.from_stat(f"{prefix}{path}_requests_per_s", Stat.of(run.requests_per_s for run in runs[path]),
                                    "requests/s", "absolute", f"{label}, {what}"))
        result.add(Figure(f"{prefix}{path}_p50_ms", p50, "ms", "absolute", f"{label}, {what}, median latency"))
        result.add(Figure(f"{prefix}{path}_p99_ms", p99, "ms", "absolute", f"{label}, {what}, 99th percentile"))
