"""Gallery-wide mining at the cost of a bf16 product, with exactly the answers of the fp32 scan.

Mining looks at every query–item cosine of the gallery, but only a few hundred items per query decide its
answer: the closest ones (``hard``) or those near the semi-hard window's edges (``semi-hard``). On a CPU with
bf16 instructions a bf16 matrix product runs 2.5-3x faster than the fp32 one, so :class:`GalleryScreen`
scores the gallery in bf16 and computes fp32 cosines only where the bf16 value is too close to a decision
to call it.

How close is too close is bounded, not estimated. For unit query ``q`` and gallery item ``g``, with ``q~``,
``g~`` their bf16 roundings, ``c`` the fp32 product's cosine and ``a`` the bf16 product's entry for
``q~.g~ - s`` (each query row carries a shift ``s``, bf16, through one extra column, so that the values near
a decision are small and bf16's rounding of them fine):

    |c - s - a| <= |dq| |g| + |q~| |dg| + gamma (|q| |g| + |q~| |g~| + |s|) + ulp(a) / 2

where ``dq = q - q~`` and ``dg = g - g~`` (Cauchy-Schwarz on ``q.g - q~.g~ = dq.g + q~.dg``), ``gamma =
n u / (1 - n u)`` with ``n = d + 2`` and ``u = 2^-24`` bounds the fp32 accumulation of either product in any
order, and the last term is the rounding of the accumulated sum to bf16. Items whose interval straddles a
decision get their fp32 cosine; every other item is decided by its bf16 value, correctly.

The fp32 cosines are the fp32 scan's own values, bit for bit: they come from the same matrix product
(``queries @ features.T``), run for blocks of :data:`EXACT_BLOCK_ROWS` queries against the items those
queries need. BLAS libraries compute each entry of a product of at least 16 rows and 16 columns by the same
sequence of operations whatever the other rows and columns are (the tests compare the samplers' picks with
and without the screen); smaller products take other code paths, so smaller batches are not screened.

The screen is used where it pays (:meth:`GalleryScreen.pays`): a CPU gallery of at least
:data:`MIN_SCREEN_ITEMS` items, a batch of at least :data:`EXACT_BLOCK_ROWS` queries, and native bf16
instructions (AVX512-BF16 or AMX; elsewhere bf16 products are emulated and slower than fp32). It keeps a
bf16 copy of the gallery's features: half the memory of the features themselves.
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Iterator

import torch
from torch import Tensor

from cirlab.negatives.gallery import Gallery
from cirlab.negatives.scan import chunk_items, top_per_row

#: Smallest gallery worth screening: below it the fp32 scan is as fast as the screen's extra steps.
MIN_SCREEN_ITEMS = 8192
#: Queries per fp32 product that settles close calls (the fewest for which BLAS products are row-independent).
EXACT_BLOCK_ROWS = 16
#: Fewest columns of those products, for the same reason.
EXACT_MIN_COLUMNS = 16
#: Items per block whose bf16 maximum is read first, so that blocks below a threshold are skipped whole.
BLOCK = 64
#: bf16's relative rounding bound (8 significant bits): |x - bf16(x)| <= BF16_UNIT |bf16(x)|.
BF16_UNIT = 2.0**-8
#: Absolute slack on every bound: covers the float32 rounding of the bounds' own arithmetic.
SLACK = 1e-6
#: Relative slack on every bound: covers the rounding of the norms the bounds are made of.
RELATIVE_SLACK = 1e-3
#: Where a shift puts a decision threshold: this far above zero, where bf16 rounds 16x finer than near 1.
SHIFT_MARGIN = 0.05
#: Largest shift magnitude (shifts are clamped to it; the batch-wide bound assumes it).
MAX_SHIFT = 1.0


def native_bf16() -> bool:
    """Whether this CPU has bf16 dot-product instructions (AVX512-BF16 or AMX), as oneDNN uses them."""
    checks = (getattr(torch.cpu, "_is_avx512_bf16_supported", None), getattr(torch.cpu, "_is_amx_tile_supported", None))
    return any(check is not None and bool(check()) for check in checks)


class GalleryScreen:
    """A bf16 copy of ``gallery`` that answers two mining questions exactly as the fp32 scan would.

    Args:
        gallery: the training gallery (its features never change while the encoders are frozen).
    """

    def __init__(self, gallery: Gallery) -> None:
        features = gallery.features
        size, dim = features.shape
        self.gallery = gallery
        # [g~, 1]: the last column multiplies each query's shift.
        self.features = torch.ones(size, dim + 1, dtype=torch.bfloat16, device=features.device)
        self.norms = features.norm(dim=1)  # |g|
        self.rounded_norms = torch.empty_like(self.norms)  # |g~|
        self.errors = torch.empty_like(self.norms)  # |dg|
        step = chunk_items(None, dim)
        for start in range(0, size, step):
            part = features[start:start + step]
            self.features[start:start + step, :dim] = part
            rounded = self.features[start:start + step, :dim].float()
            self.rounded_norms[start:start + step] = rounded.norm(dim=1)
            self.errors[start:start + step] = (part - rounded).norm(dim=1)
        self.gamma = (dim + 2) * 2.0**-24 / (1 - (dim + 2) * 2.0**-24)
        self._largest = (self.norms.max(), self.rounded_norms.max(), self.errors.max())
        #: Per item, what multiplies a query's |q~| in a pair's bound: |dg| + gamma |g~|.
        self.item_terms = self.errors + self.gamma * self.rounded_norms

    @staticmethod
    def pays(gallery: Gallery, rows: int) -> bool:
        """Whether screening ``rows`` queries against ``gallery`` is faster than the fp32 scan (and exact)."""
        return (gallery.device.type == "cpu" and len(gallery) >= MIN_SCREEN_ITEMS and rows >= EXACT_BLOCK_ROWS
                and native_bf16())

    # ---------------------------------------------------------------- the two questions
    def closest(self, queries: Tensor, width: int, chunk_size: int | None,
                rows: Tensor | None = None) -> tuple[Tensor, Tensor, Tensor]:
        """The ``width`` items of highest fp32 cosine with each query, as :meth:`RunningTopK.result` returns
        them after the fp32 scan of ``queries``: ``(cosines, indices, valid)``, each ``[R, width]``, closest
        first, ties by index; only for the queries ``rows`` (sorted) when given.

        Each chunk's blocks of :data:`BLOCK` items give, through their maxima, a running lower bound on the
        ``width``-th largest cosine; items that could still reach it are collected, and the next chunk is
        shifted to put that bound just above zero.
        """
        threads = torch.get_num_threads()
        with intra_op_threads(1):  # the work between the products is small operations: see intra_op_threads
            return self._closest(queries, width, chunk_size, rows, threads)

    def _closest(self, queries: Tensor, width: int, chunk_size: int | None, rows: Tensor | None,
                 threads: int) -> tuple[Tensor, Tensor, Tensor]:
        chosen = queries if rows is None else queries[rows]
        count = chosen.shape[0]
        width = min(width, len(self.gallery))
        batch = _Batch(chosen, self)
        best = torch.full((count, width), float("-inf"), device=queries.device)  # lower bounds of block maxima
        shift = torch.zeros(count, dtype=torch.bfloat16, device=queries.device)
        found = []
        for start, stop in self._chunks(count, chunk_size):
            approx = self._product(batch, start, stop, shift, threads)
            maxima = _block_maxima(approx)
            # The chunk's width largest block maxima (by bits: exact for positive ones, and any block's value
            # is some item's) and the lower bounds of their cosines (increasing with the value).
            top = maxima.topk(min(width, maxima.shape[1]), dim=1).values.view(torch.bfloat16).float()
            lows = top + (shift.float() - batch.row_error)[:, None] - BF16_UNIT * top.abs()
            best = torch.cat([best, lows], dim=1).topk(width, dim=1).values
            floor = best[:, -1]  # the width-th largest cosine is at least this
            # Shifted bf16 value an item needs for its largest possible cosine to reach the floor.
            found.append(_collect(approx, maxima, _reach(floor - shift.float() - batch.row_error), start, shift))
            shift = _shift(torch.where(floor > float("-inf"), floor - SHIFT_MARGIN, shift.float()))
        row, column, approx, shift = _sorted(found)
        low, high = self._pair_bounds(batch, row, column, approx, shift)
        cut = top_per_row(row, low, column, count, width, float("-inf"))[0][:, -1]
        keep = high >= cut[row]
        row, column = row[keep], column[keep]
        cosines = exact_cosines(queries, self.gallery.features, row if rows is None else rows[row], column)
        return top_per_row(row, cosines, column, count, width, float("-inf"))

    def window(self, queries: Tensor, lower: Tensor, upper: Tensor, chunk_size: int | None) -> tuple[Tensor, Tensor]:
        """``(rows, items)`` of every (query, item) pair with ``lower < cos < upper`` by the fp32 product's
        cosine (``lower`` and ``upper`` are per query, ``[R]``), sorted by query, then item."""
        threads = torch.get_num_threads()
        with intra_op_threads(1):  # the work between the products is small operations: see intra_op_threads
            return self._window(queries, lower, upper, chunk_size, threads)

    def _window(self, queries: Tensor, lower: Tensor, upper: Tensor, chunk_size: int | None,
                threads: int) -> tuple[Tensor, Tensor]:
        batch = _Batch(queries, self)
        shift = _shift(lower - SHIFT_MARGIN)
        threshold = _reach(lower - shift.float() - batch.row_error)
        found = []
        for start, stop in self._chunks(queries.shape[0], chunk_size):
            approx = self._product(batch, start, stop, shift, threads)
            found.append(_collect(approx, _block_maxima(approx), threshold, start, shift))
        row, column, approx, shift = _sorted(found)
        # First with the batch's loose bound (most items sit well inside or outside), then with each pair's own.
        value, loose = approx + shift, batch.row_error[row] + BF16_UNIT * approx.abs()
        row_lower, row_upper = lower[row], upper[row]
        inside = (value - loose > row_lower) & (value + loose < row_upper)
        near = (~inside & (value + loose > row_lower) & (value - loose < row_upper)).nonzero(as_tuple=True)[0]
        low, high = self._pair_bounds(batch, row[near], column[near], approx[near], shift[near])
        near_lower, near_upper = row_lower[near], row_upper[near]
        near_inside = (low > near_lower) & (high < near_upper)
        unsure = (~near_inside & (high > near_lower) & (low < near_upper)).nonzero(as_tuple=True)[0]
        if unsure.numel():
            pairs = near[unsure]
            cosines = exact_cosines(queries, self.gallery.features, row[pairs], column[pairs])
            near_inside[unsure] = (cosines > row_lower[pairs]) & (cosines < row_upper[pairs])
        inside[near] = near_inside
        return row[inside], column[inside]

    # ---------------------------------------------------------------- helpers
    def _chunks(self, rows: int, chunk_size: int | None) -> list[tuple[int, int]]:
        """``(start, stop)`` of the gallery chunks scored at once: automatic chunks hold twice the fp32 scan's
        values, the same bytes in bf16 (fewer chunks, fewer small operations between the products)."""
        step = chunk_size if chunk_size is not None else 2 * chunk_items(None, rows)
        return [(start, min(start + step, len(self.gallery))) for start in range(0, len(self.gallery), step)]

    def _product(self, batch: _Batch, start: int, stop: int, shift: Tensor, threads: int) -> Tensor:
        """``[R, stop - start]`` bf16 values of ``q~.g~ - shift`` for the items ``start..stop-1``, computed on
        ``threads`` threads."""
        batch.rounded[:, -1] = -shift
        with intra_op_threads(threads):
            return batch.rounded @ self.features[start:stop].T

    def _pair_bounds(self, batch: _Batch, row: Tensor, column: Tensor, approx: Tensor,
                     shift: Tensor) -> tuple[Tensor, Tensor]:
        """Lower and upper bounds of the fp32 cosine of each (row, column) pair whose shifted bf16 value is
        ``approx`` (float32) under ``shift``."""
        # |dq| |g| + |q~| |dg| + gamma (|q| |g| + |q~| |g~| + |s|), grouped by what is the row's and the item's.
        error = (batch.row_terms[row] * self.norms[column] + batch.rounded_norms[row] * self.item_terms[column]
                 + self.gamma * shift.abs())
        error = error * (1 + RELATIVE_SLACK) + SLACK + _half_ulp(approx)
        value = approx + shift
        return value - error, value + error


class _Batch:
    """A batch's queries in bf16 (with the shift column) and the norms its error bounds need."""

    def __init__(self, queries: Tensor, screen: GalleryScreen) -> None:
        rows, dim = queries.shape
        self.rounded = torch.zeros(rows, dim + 1, dtype=torch.bfloat16, device=queries.device)
        self.rounded[:, :dim] = queries
        rounded = self.rounded[:, :dim].float()
        self.norms = queries.norm(dim=1)
        self.rounded_norms = rounded.norm(dim=1)
        self.errors = (queries - rounded).norm(dim=1)
        #: Per query, what multiplies an item's |g| in a pair's bound: |dq| + gamma |q|.
        self.row_terms = self.errors + screen.gamma * self.norms
        norm, rounded_norm, item_error = screen._largest
        error = (self.errors * norm + self.rounded_norms * item_error
                 + screen.gamma * (self.norms * norm + self.rounded_norms * rounded_norm + MAX_SHIFT))
        #: [R] bound of |c - s - a| over every item and shift, leaving out bf16's rounding of a itself.
        self.row_error = error * (1 + RELATIVE_SLACK) + SLACK


def _sorted(found: list[tuple[Tensor, Tensor, Tensor, Tensor]]) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """The chunks' collected ``(rows, items, values, shifts)`` in one list, sorted by row, then item."""
    row, column, approx, shift = (torch.cat(parts) for parts in zip(*found))
    order = torch.sort(row, stable=True).indices  # items ascend within a row: chunks come in gallery order
    return row[order], column[order], approx[order], shift[order]


def exact_cosines(queries: Tensor, features: Tensor, rows: Tensor, columns: Tensor) -> Tensor:
    """fp32 cosines of the pairs (``queries[rows]``, ``features[columns]``), bit-identical to the entries of
    ``queries @ features.T``: one product per block of :data:`EXACT_BLOCK_ROWS` queries (the last block
    overlaps its predecessor) against the items that block needs. ``rows`` must be sorted; ``queries`` must
    hold at least :data:`EXACT_BLOCK_ROWS` rows."""
    count = queries.shape[0]
    values = torch.empty(rows.shape[0], dtype=queries.dtype, device=queries.device)
    firsts = torch.arange(0, count + EXACT_BLOCK_ROWS, EXACT_BLOCK_ROWS, device=rows.device).clamp(max=count)
    edges = torch.searchsorted(rows, firsts).tolist()
    largest = max(b - a for a, b in itertools.pairwise(edges))
    # One buffer for every block's items: fresh large buffers cost a page fault per 4 KiB on first touch.
    buffer = features.new_empty(max(largest, EXACT_MIN_COLUMNS), features.shape[1])
    for block, first in enumerate(range(0, count, EXACT_BLOCK_ROWS)):
        start, stop = edges[block], edges[block + 1]
        if start == stop:
            continue
        base = min(first, count - EXACT_BLOCK_ROWS)
        needed, position = torch.unique(columns[start:stop], return_inverse=True)
        if needed.shape[0] < EXACT_MIN_COLUMNS:
            padding = torch.arange(EXACT_MIN_COLUMNS - needed.shape[0], device=needed.device) % features.shape[0]
            needed = torch.cat([needed, padding])
        items = torch.index_select(features, 0, needed, out=buffer[:needed.shape[0]])
        products = queries[base:base + EXACT_BLOCK_ROWS] @ items.T
        values[start:stop] = products[rows[start:stop] - base, position]
    return values


def _block_maxima(approx: Tensor) -> Tensor:
    """``[R, ceil(c / BLOCK)]`` int16 bits of each block of :data:`BLOCK` columns' largest value if that is
    positive, else of some value of the block (positive bf16 numbers order like their bits)."""
    bits = approx.view(torch.int16)
    full = approx.shape[1] // BLOCK * BLOCK
    maxima = bits[:, :full].unfold(1, BLOCK, BLOCK).amax(dim=2) if full else bits[:, :0]
    if full < approx.shape[1]:
        maxima = torch.cat([maxima, bits[:, full:].amax(dim=1, keepdim=True)], dim=1)
    return maxima


def _collect(approx: Tensor, maxima: Tensor, threshold: Tensor, start: int,
             shift: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """``(rows, items, values, shifts)`` of the entries of ``approx`` [R, c] at or above each row's
    ``threshold``, reading only the blocks whose maximum (bits, :func:`_block_maxima`) reaches it; values and
    shifts as float32."""
    full = approx.shape[1] // BLOCK
    if not bool((threshold > 0).all()) or full == 0:  # bit order is value order for positive numbers only
        return _collect_dense(approx, threshold, start, shift)
    bits = approx.view(torch.int16)
    least = _bits_at_least(threshold)
    block_rows, blocks = (maxima[:, :full] >= least[:, None]).nonzero(as_tuple=True)
    if full * BLOCK == approx.shape[1]:  # blocks are rows of a [R * full, BLOCK] view: copy them whole
        values = torch.index_select(bits.view(-1, BLOCK), 0, block_rows * full + blocks)
    else:
        values = bits[:, :full * BLOCK].unfold(1, BLOCK, BLOCK)[block_rows, blocks]  # [n, BLOCK]
    hit, offset = (values >= least[block_rows, None]).nonzero(as_tuple=True)
    rows, columns, found = block_rows[hit], blocks[hit] * BLOCK + offset, values[hit, offset]
    if full * BLOCK < approx.shape[1]:  # the shorter last block
        tail_rows, tail_columns = (bits[:, full * BLOCK:] >= least[:, None]).nonzero(as_tuple=True)
        rows, found = torch.cat([rows, tail_rows]), torch.cat([found, bits[tail_rows, full * BLOCK + tail_columns]])
        columns = torch.cat([columns, full * BLOCK + tail_columns])
    return rows, start + columns, found.view(torch.bfloat16).float(), shift[rows].float()


def _collect_dense(approx: Tensor, threshold: Tensor, start: int,
                   shift: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """:func:`_collect` by comparing every entry (for thresholds at or below zero)."""
    rows, columns = (approx >= threshold[:, None]).nonzero(as_tuple=True)
    return rows, start + columns, approx[rows, columns].float(), shift[rows].float()


def _bits_at_least(threshold: Tensor) -> Tensor:
    """int16 bits of the smallest bf16 number at or above each positive float32 ``threshold``."""
    rounded = threshold.to(torch.bfloat16)
    bits = rounded.view(torch.int16)
    return torch.where(rounded.float() < threshold, bits + 1, bits)


@contextlib.contextmanager
def intra_op_threads(count: int) -> Iterator[None]:
    """Run the block on ``count`` intra-op threads, then give the caller back its number.

    The screen's work besides its bf16 products is many small operations (a few thousand to a few million
    elements). A second thread saves little on them, and on a machine whose cores are busy with other work it
    costs a lot: every parallel operation waits for both of its threads to be scheduled (at load average 5 on
    2 cores, a ``hard`` call at 200k items took 1.4 s with 2 threads and 0.7 s with 1, its products alike). So
    they run on one thread, and the products on the caller's. The setting is the process's (torch has no
    per-call one): samplers run on the training loop's thread, between its own operations.
    """
    previous = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def _shift(values: Tensor) -> Tensor:
    """Shifts for ``values`` (float32): clamped to :data:`MAX_SHIFT` in magnitude, in bf16."""
    return values.clamp(-MAX_SHIFT, MAX_SHIFT).to(torch.bfloat16)


def _reach(bound: Tensor) -> Tensor:
    """The bf16 value ``a`` an entry needs for ``a + BF16_UNIT |a| >= bound`` (its largest possible value before
    bf16's rounding reaching ``bound``), lowered by :data:`SLACK`; ``-inf`` stays ``-inf``."""
    scale = torch.where(bound >= 0, 1 + BF16_UNIT, 1 - BF16_UNIT)
    return bound / scale - SLACK


def _half_ulp(values: Tensor) -> Tensor:
    """Half the spacing of bf16 numbers just above ``|values|`` (bf16 values as float32): the farthest a number
    rounded to one of them can have been."""
    return torch.ldexp(torch.ones_like(values), torch.frexp(values).exponent - 9)
