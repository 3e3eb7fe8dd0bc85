"""Gallery-wide mining in chunks: the building blocks every mining sampler is made of.

A training gallery can hold hundreds of thousands of features; a ``[B, N]`` similarity matrix of a
batch against all of them would not fit beside the model. :func:`scan_gallery` therefore walks the
gallery in chunks (:func:`chunk_items` items at a time, about 8M similarities per chunk by default),
computing one matrix product per chunk. Samplers keep what they need across chunks in
:class:`RunningTopK` (a per-row top-k merged chunk by chunk), so memory stays at one chunk whatever
``N`` is.

The hot path does not evaluate the duplicate guard on every gallery item: samplers keep a few more
candidates than they need (:data:`GUARD_SLACK`) and check only those afterwards, which also spares the
second matrix product that near-duplicate detection would cost. Only a query whose candidates are
mostly duplicates is scanned again with the guard's flags on every item (``with_guard=True``).

Uniform choices among qualifying items use :class:`RandomKeys`: every (row, item) pair gets a random
key that depends on the caller's generator and on the pair, never on the chunking; keeping the ``k``
largest keys among qualifying items is a uniform sample without replacement, and chunked and
unchunked scans agree exactly.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch import Tensor

from cirlab.negatives.gallery import Gallery
from cirlab.negatives.guard import DuplicateGuard, GuardFlags, no_negative_error

#: Similarities computed per chunk when ``chunk_size`` is automatic: 8M (32 MiB in float32; a chunk's
#: masks and random keys add a few times that). Scans that apply the guard to every item use half.
CHUNK_ELEMENTS = 1 << 23
#: Smallest automatic chunk, so that huge batches still scan in reasonably large matrix products.
MIN_CHUNK_ITEMS = 1024
#: Extra candidates kept beyond what a sampler needs, so that the guard can remove duplicates afterwards.
GUARD_SLACK = 32


def chunk_items(chunk_size: int | None, rows: int) -> int:
    """Gallery items per chunk: ``chunk_size``, or when None an amount that keeps ``rows x items`` near
    :data:`CHUNK_ELEMENTS`."""
    if chunk_size is not None:
        return chunk_size
    return max(MIN_CHUNK_ITEMS, CHUNK_ELEMENTS // max(rows, 1))


@dataclass
class Chunk:
    """One slice of the gallery, scored against every query row of a scan."""

    start: int  # first gallery index of the slice
    stop: int  # one past the last
    columns: Tensor  # [c] gallery indices of the slice
    cosines: Tensor | None  # [R, c] query–item cosines (None when the scan has no queries)
    flags: GuardFlags | None  # [R, c] guard flags of each (target, item) pair, when asked for
    categories: Tensor  # [c] category ids of the slice


def scan_gallery(gallery: Gallery, positives: Tensor, queries: Tensor | None, chunk_size: int | None,
                 guard: DuplicateGuard | None = None) -> Iterator[Chunk]:
    """Yield the gallery chunk by chunk with query cosines and, given a ``guard``, its flags for ``positives``.

    ``queries`` ([R, d], L2-normalised) may be None when only the guard's flags are needed. With the
    guard's near-duplicate rule on, the same matrix product also scores the targets against the chunk.
    """
    features = gallery.features
    rows = positives.shape[0]
    step = chunk_items(chunk_size, rows if guard is None else 2 * rows)
    left = [] if queries is None else [queries]
    near = guard is not None and guard.uses_features
    if near:
        left.append(features[positives])
    left_matrix = torch.cat(left) if left else None
    for start in range(0, len(gallery), step):
        stop = min(start + step, len(gallery))
        columns = torch.arange(start, stop, device=features.device)
        products = left_matrix @ features[start:stop].T if left_matrix is not None else None
        flags = None
        if guard is not None:
            flags = guard.flags(positives, columns, products[-rows:] if near else None)
        yield Chunk(start=start, stop=stop, columns=columns, cosines=products[:rows] if queries is not None else None,
                    flags=flags, categories=gallery.categories[start:stop])


class RunningTopK:
    """The ``k`` largest values per row, and their gallery indices, over chunks seen so far.

    ``fill`` marks "nothing here" (``-inf`` for similarities, ``-1`` for :class:`RandomKeys`); masked
    entries should carry it, and :meth:`result` reports them as invalid. Rows are sorted largest first.
    """

    def __init__(self, rows: int, k: int, fill: float, dtype: torch.dtype, device: torch.device) -> None:
        self.k = k
        self.fill = fill
        self.values = torch.full((rows, k), fill, dtype=dtype, device=device)
        self.indices = torch.full((rows, k), -1, dtype=torch.long, device=device)

    def update(self, values: Tensor, columns: Tensor) -> None:
        """Merge a chunk's ``values`` [R, c] whose columns are gallery items ``columns`` [c]."""
        take = min(self.k, values.shape[1])
        chunk_values, chunk_positions = values.topk(take, dim=1)
        merged_values = torch.cat([self.values, chunk_values], dim=1)
        merged_indices = torch.cat([self.indices, columns[chunk_positions]], dim=1)
        self.values, positions = merged_values.topk(self.k, dim=1)
        self.indices = merged_indices.gather(1, positions)

    def result(self) -> tuple[Tensor, Tensor, Tensor]:
        """``(values, indices, valid)``, each ``[R, k]``, largest first; invalid slots have index -1.

        Equal values (exact duplicates in the gallery) are ordered by gallery index, so that the order
        does not depend on how the gallery was chunked.
        """
        by_index = self.indices.sort(dim=1).indices
        values, indices = self.values.gather(1, by_index), self.indices.gather(1, by_index)
        by_value = values.sort(dim=1, descending=True, stable=True).indices
        values, indices = values.gather(1, by_value), indices.gather(1, by_value)
        valid = values != self.fill
        return values, torch.where(valid, indices, torch.full_like(indices, -1)), valid


def top_per_row(rows: Tensor, values: Tensor, columns: Tensor, num_rows: int, k: int,
                fill: float) -> tuple[Tensor, Tensor, Tensor]:
    """The ``k`` largest of sparse entries per row, laid out as :meth:`RunningTopK.result` lays them out.

    Entry ``i`` is ``values[i]`` at gallery item ``columns[i]`` of row ``rows[i]``; the entries must come sorted
    by row, then item, and ``fill`` must be smaller than every value. Returns ``(values, indices, valid)``,
    each ``[num_rows, k]``, largest first, equal values by item; of values tied across the cut, the smallest
    items (where :class:`RunningTopK` keeps whichever ``torch.topk`` keeps). Missing slots hold ``fill`` and -1.
    """
    counts = torch.bincount(rows, minlength=num_rows)
    width = max(int(counts.max()) if counts.numel() else 0, k)
    position = torch.arange(rows.shape[0], device=rows.device) - (counts.cumsum(0) - counts)[rows]
    dense_values = torch.full((num_rows, width), fill, dtype=values.dtype, device=values.device)
    dense_columns = torch.full((num_rows, width), -1, dtype=torch.long, device=values.device)
    dense_values[rows, position] = values
    dense_columns[rows, position] = columns
    # The k + 1 largest, then a stable sort of the k by value: equal values keep item order. Rows where the
    # (k + 1)-th equals the k-th (a tie across the cut, where topk may keep either) are sorted whole.
    order = dense_values.topk(min(k + 1, width), dim=1).indices.sort(dim=1).values
    candidates = dense_values.gather(1, order)
    top_values, by_value = torch.sort(candidates, dim=1, descending=True, stable=True)
    order = order.gather(1, by_value)
    if width > k:
        tied = (top_values[:, k - 1] == top_values[:, k]) & (top_values[:, k - 1] != fill)
        tied = tied.nonzero(as_tuple=True)[0]
        if tied.numel():
            order[tied] = torch.sort(dense_values[tied], dim=1, descending=True, stable=True).indices[:, :k + 1]
            top_values[tied] = dense_values[tied].gather(1, order[tied])
    top_values, order = top_values[:, :k], order[:, :k]
    valid = top_values != fill
    return top_values, torch.where(valid, dense_columns.gather(1, order), -1), valid


class RandomKeys:
    """Random keys in [0, 1) for (row, gallery item) pairs, fixed for one sampling call.

    One table of ``N`` uniform float64 numbers is drawn from the generator, and each row reads it
    from its own random offset (cyclically): ``key(r, j) = table[(offset[r] + j) mod N]``. Within a
    row the keys are independent uniforms, so the top-k keys among any set of items are a uniform
    sample of it; the keys depend only on (row, item), so every chunking yields the same sample.
    Reading a chunk copies one contiguous slice per row, far cheaper than hashing every pair.
    """

    def __init__(self, size: int, rows: int, generator: torch.Generator, device: torch.device) -> None:
        table = uniform((size,), generator, device)
        self._table = torch.cat([table, table])  # offset + item < 2N: no modulo needed
        self._size = size
        self.offsets = torch.randint(0, size, (rows,), generator=generator, device=generator.device).to(device)

    def chunk(self, start: int, stop: int, rows: Tensor | None = None) -> Tensor:
        """``[R, stop - start]`` keys of items ``start..stop-1`` for all rows, or for the row indices ``rows``."""
        offsets = self.offsets if rows is None else self.offsets[rows]
        # unfold is a view whose row o is table[o:o + width]; indexing it copies contiguous slices.
        return self._table[start:].unfold(0, stop - start, 1)[offsets]

    def pairs(self, rows: Tensor, items: Tensor) -> Tensor:
        """Keys of the (row, item) pairs ``(rows[i], items[i])``: the same numbers :meth:`chunk` gives them."""
        return self._table[self.offsets[rows] + items]


def uniform(shape: tuple[int, ...], generator: torch.Generator, device: torch.device,
            dtype: torch.dtype = torch.float64) -> Tensor:
    """Uniform [0, 1) numbers drawn from ``generator`` (on its device), moved to ``device``."""
    return torch.rand(shape, generator=generator, device=generator.device, dtype=dtype).to(device)


def compact(indices: Tensor, keep: Tensor, width: int) -> tuple[Tensor, Tensor]:
    """The kept entries of each row of ``indices`` [R, m], moved to the front in order, cut to ``width``.

    Returns ``(indices [R, width], valid [R, width])``; missing entries have index -1.
    """
    order = torch.sort((~keep).to(torch.int8), dim=1, stable=True).indices[:, :width]
    picked = indices.gather(1, order)
    valid = keep.gather(1, order)
    if picked.shape[1] < width:
        pad = width - picked.shape[1]
        picked = torch.cat([picked, picked.new_full((picked.shape[0], pad), -1)], dim=1)
        valid = torch.cat([valid, valid.new_zeros((valid.shape[0], pad))], dim=1)
    return torch.where(valid, picked, torch.full_like(picked, -1)), valid


def fill_cyclic(indices: Tensor, valid: Tensor, k: int) -> tuple[Tensor, Tensor]:
    """``k`` picks per row from the valid ``indices`` [R, m], in order, repeating them when fewer than ``k``.

    Returns ``(picks [R, k], repeated [R])`` where ``repeated`` counts the slots that reuse a pick.
    Rows without any valid entry get index -1 (callers refuse those before).
    """
    compacted, _ = compact(indices, valid, indices.shape[1])
    available = valid.sum(dim=1, keepdim=True)
    slots = torch.arange(k, device=indices.device)[None, :]
    source = torch.where(slots < available, slots, slots % available.clamp(min=1))
    picks = compacted.gather(1, source.clamp(max=indices.shape[1] - 1))
    picks = torch.where(available > 0, picks, torch.full_like(picks, -1))
    return picks, (k - available.squeeze(1)).clamp(min=0)


def fill_with_fallback(picks: Tensor, picks_valid: Tensor, extra: Tensor, extra_valid: Tensor, positives: Tensor,
                       gallery_size: int, k: int) -> tuple[Tensor, Tensor]:
    """``k`` picks per row: a sampler's own valid ``picks`` [R, m] first, then its fallback candidates ``extra``
    [R, e] in preference order, repeated cyclically when all of them are fewer than ``k``.

    Returns :func:`fill_cyclic`'s ``(picks [R, k], repeated [R])``. Raises :func:`no_negative_error` naming the
    targets (``positives`` [R]) of the rows that have no valid entry at all.
    """
    merged = torch.cat([picks, extra], dim=1)
    merged_valid = torch.cat([picks_valid, extra_valid], dim=1)
    empty = ~merged_valid.any(dim=1)
    if bool(empty.any()):
        raise no_negative_error(positives[empty], gallery_size)
    return fill_cyclic(merged, merged_valid, k)
