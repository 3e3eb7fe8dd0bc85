"""Query figures: what a trained combiner retrieves for a few validation queries.

One PNG per run. Each row is one query of the validation protocol: the reference image, the caption
("C1 and c2", the evaluation form), the top 10 gallery images by cosine similarity (a green border
marks the target) and, last, the target itself with its rank. The queries are drawn with a fixed
seed, spread over the categories, and are the same in every run's figure so that the runs can be
compared image by image. Ranking follows the cache's protocol exactly (:mod:`cirlab.evaluation.protocol`:
same gallery, same caption form, CIRR's reference removed, ties broken by gallery order).
"""

from __future__ import annotations

import textwrap
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from cirlab.errors import CirlabError, DataError
from cirlab.features.cache import FeatureCache
from cirlab.io import atomic_path

TOP_K = 10
TILE_PIXELS = 128  # images are shrunk to at most this side before drawing
DPI = 90
TARGET_COLOUR = "#1a9641"
REFERENCE_COLOUR = "#2b83ba"
OTHER_COLOUR = "#bbbbbb"


class QueryFigureUnavailable(CirlabError):
    """The query figures cannot be drawn (no data set images where the feature cache says they are)."""


@dataclass(frozen=True)
class QueryPick:
    """One validation query chosen for the figures: its category and position among the category's queries."""

    category: str
    index: int


@dataclass
class RankedQuery:
    """One query as a run's combiner ranks it."""

    category: str
    caption: str
    reference: str  # image id
    target: str | None  # image id; None when the split withholds it
    results: list[str]  # the top image ids, best first
    target_rank: int | None  # 0-based rank of the target; None when it is outside the gallery


def resolve_data_root(cache: FeatureCache, data_root: str | Path | None = None) -> Path:
    """The data set folder whose images the figures show: ``data_root``, else the one the cache records.

    An explicit ``data_root`` that does not exist is an error; a recorded one that does not exist (the
    cache was moved to another machine, or made from random features) makes the figures unavailable.
    """
    if data_root is not None:
        root = Path(data_root)
        if not root.is_dir():
            raise DataError(root, "data set folder not found")
        return root
    recorded = cache.manifest.get("data_root")
    if not recorded:
        raise QueryFigureUnavailable(f"{cache.root / 'manifest.json'} records no data_root; pass the data set "
                                     f"folder (--data DIR) to draw them")
    root = Path(recorded)
    if not root.is_dir():
        raise QueryFigureUnavailable(f"the data set {root} named by the feature cache is not there; pass the data "
                                     f"set folder (--data DIR) to draw them")
    return root


def pick_queries(counts: Mapping[str, int], count: int, seed: int = 0) -> list[QueryPick]:
    """``count`` distinct queries drawn with ``seed``, taking the categories in turn.

    ``counts`` maps each category to its number of rankable queries. A category that runs out of
    queries is skipped; fewer than ``count`` picks come back only when every query is taken.
    """
    rng = np.random.default_rng(seed)
    orders = {category: list(rng.permutation(n)) for category, n in counts.items()}
    picks: list[QueryPick] = []
    while len(picks) < count and any(orders.values()):
        for category in counts:
            if orders[category] and len(picks) < count:
                picks.append(QueryPick(category, int(orders[category].pop(0))))
    return picks


def rank_queries(cache: FeatureCache, combine: Any, picks: Sequence[QueryPick], validation: Any,
                 top_k: int = TOP_K) -> list[RankedQuery]:
    """Rank the picked queries with ``combine`` on ``validation`` (a :class:`~cirlab.evaluation.protocol.Protocol`)."""
    import torch
    import torch.nn.functional as F

    from cirlab.evaluation.recall import OUTSIDE_GALLERY

    ranked = []
    with torch.no_grad():
        for pick in picks:
            images, texts, _ = validation.query_inputs(pick.category)
            queries = validation.queries[pick.category]
            row = slice(pick.index, pick.index + 1)
            query = F.normalize(combine(images[row], texts[row]).float(), dim=-1)
            scores = validation.scores(pick.category, pick.index, query)[0]
            order = torch.sort(scores, descending=True, stable=True).indices[:top_k].tolist()
            rank = int(validation.rank(pick.category, pick.index, query)[0][0])
            gallery_ids = [cache.image_ids[int(r)] for r in queries.gallery_rows]
            position = int(queries.positions[pick.index])
            target_row = int(cache.triplets.target_rows[position])
            ranked.append(RankedQuery(
                category=pick.category,
                caption=cache.eval_caption(position),
                reference=cache.image_ids[int(queries.reference_rows[pick.index])],
                target=cache.image_ids[target_row] if target_row >= 0 else None,
                results=[gallery_ids[i] for i in order],
                target_rank=None if rank == OUTSIDE_GALLERY else rank,
            ))
    return ranked


def write_query_figures(cache: FeatureCache, data_root: str | Path, run_dirs: Mapping[str, Path],
                        paths: Mapping[str, Path], *, categories: Sequence[str] | None = None, split: str = "val",
                        count: int = 4, seed: int = 0, top_k: int = TOP_K) -> dict[str, Path]:
    """Draw one query figure per run (its ``best/`` combiner) for the same ``count`` queries; return the paths."""
    from cirlab.combiners import load_combiner
    from cirlab.combiners.persistence import resolve_checkpoint
    from cirlab.data import open_dataset
    from cirlab.evaluation.protocol import build_protocol

    try:
        dataset = open_dataset(data_root, cache.dataset)
        images = ImageTiles(dataset)
    except DataError as error:
        raise QueryFigureUnavailable(f"cannot read the data set's images ({error})") from None
    validation = build_protocol(cache, split, categories=list(categories) if categories else None)
    picks = pick_queries({c: len(q.positions) for c, q in validation.queries.items()}, count, seed)
    first = cache.image_ids[int(validation.queries[picks[0].category].reference_rows[picks[0].index])]
    if dataset.image_path(first) is None:
        raise QueryFigureUnavailable(f"{Path(data_root) / 'images'} lacks the images of the feature cache "
                                     f"(e.g. {first}); pass the data set folder (--data DIR)")
    written = {}
    for name, run_dir in run_dirs.items():
        combiner = load_combiner(resolve_checkpoint(run_dir))
        ranked = rank_queries(cache, combiner, picks, validation, top_k)
        written[name] = draw_queries(ranked, images, paths[name], title=f"{name}: top {top_k} results "
                                                                        f"(best checkpoint, {split} split)")
    return written


class ImageTiles:
    """Decoded, shrunk images by id (each file read once), with a grey tile for a missing one."""

    def __init__(self, dataset: Any) -> None:
        self.dataset = dataset
        self._tiles: dict[str, np.ndarray] = {}

    def __call__(self, image_id: str | None) -> np.ndarray:
        if image_id is None:
            return _blank()
        if image_id not in self._tiles:
            from cirlab.data import load_image

            path = self.dataset.image_path(image_id)
            try:
                image = load_image(path) if path is not None else None
            except DataError:
                image = None
            if image is None:
                self._tiles[image_id] = _blank()
            else:
                image.thumbnail((TILE_PIXELS, TILE_PIXELS))
                self._tiles[image_id] = np.asarray(image)
        return self._tiles[image_id]


def draw_queries(ranked: Sequence[RankedQuery], tiles: Any, path: str | Path, title: str = "") -> Path:
    """Draw ``ranked`` (one row each) to the PNG ``path``; ``tiles(image_id)`` gives an RGB array."""
    return _save_palette_png(query_figure(ranked, tiles, title), Path(path))


def query_figure(ranked: Sequence[RankedQuery], tiles: Any, title: str = "") -> Any:
    """The matplotlib figure of :func:`draw_queries` (on an Agg canvas), one row per query."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    top_k = max((len(q.results) for q in ranked), default=TOP_K)
    # reference | gap | top-k results | gap | target
    ratios = [1.0, 0.18] + [1.0] * top_k + [0.18, 1.0]
    figure = Figure(figsize=(1.0 * (top_k + 2) + 0.6, 1.62 * len(ranked) + 0.5), dpi=DPI, layout="constrained")
    if title:
        figure.suptitle(title, fontsize=11, fontweight="bold")
    rows = figure.subfigures(len(ranked), 1, squeeze=False)[:, 0]
    for subfigure, query in zip(rows, ranked):
        caption = textwrap.shorten(query.caption.strip() or "(empty caption)", width=150, placeholder=" …")
        subfigure.suptitle(f"{query.category}: \u201c{caption}\u201d", fontsize=9.5, x=0.01, ha="left")
        axes = subfigure.subplots(1, len(ratios), gridspec_kw={"width_ratios": ratios, "wspace": 0.04})
        for ax in axes:
            ax.set_xticks([])
            ax.set_yticks([])
        axes[1].axis("off")
        axes[-2].axis("off")
        _tile(axes[0], tiles(query.reference), "reference", REFERENCE_COLOUR, 2.5)
        for i in range(top_k):
            ax = axes[2 + i]
            if i >= len(query.results):
                ax.axis("off")
                continue
            hit = query.results[i] == query.target
            _tile(ax, tiles(query.results[i]), f"{i + 1}" + (" target" if hit else ""),
                  TARGET_COLOUR if hit else OTHER_COLOUR, 4.0 if hit else 0.8, bold=hit)
        rank = "outside gallery" if query.target_rank is None else f"rank {query.target_rank + 1}"
        _tile(axes[-1], tiles(query.target), f"target\n{rank}", TARGET_COLOUR, 4.0, bold=True)
    FigureCanvasAgg(figure)
    _fit_titles(figure)
    return figure


def _fit_titles(figure: Any) -> None:
    """Shrink the font of every tile label wider than its tile (a 5-digit rank, a long label), so none is clipped.

    Lays the figure out once to measure; the labels' widths do not feed back into the layout.
    """
    figure.draw_without_rendering()
    renderer = figure.canvas.get_renderer()
    for ax in figure.get_axes():
        title = ax.title
        if not title.get_text():
            continue
        width, room = title.get_window_extent(renderer).width, ax.get_window_extent(renderer).width
        if width > room > 0:
            title.set_fontsize(title.get_fontsize() * room / width * 0.97)


def _save_palette_png(figure: Any, path: Path) -> Path:
    """Write ``figure`` as a 256-colour PNG, atomically.

    A sheet of product thumbnails quantised to an adaptive 256-colour palette is about a third of the
    size of the full-colour PNG, with no difference visible at thumbnail size.
    """
    import io

    from PIL import Image

    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=DPI)
    buffer.seek(0)
    with Image.open(buffer) as image:
        palette = image.convert("RGB").quantize(colors=256)
    with atomic_path(path) as tmp:
        palette.save(tmp, format="PNG", optimize=True)
    return path


def _tile(ax: Any, pixels: np.ndarray, label: str, colour: str, width: float, bold: bool = False) -> None:
    ax.imshow(pixels, interpolation="lanczos")
    ax.set_title(label, fontsize=8, color=colour if bold else "black", fontweight="bold" if bold else "normal",
                 pad=2)
    for spine in ax.spines.values():
        spine.set_visible(True)
        spine.set_edgecolor(colour)
        spine.set_linewidth(width)


def _blank() -> np.ndarray:
    return np.full((TILE_PIXELS, TILE_PIXELS, 3), 225, dtype=np.uint8)
