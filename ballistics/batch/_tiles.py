"""Tiling of the pair matrix.

Scans are split into consecutive blocks of ``tile_size``; a tile is one block of rows x
one block of columns of the pair matrix, so a worker reads and prepares at most
``2 * tile_size`` scans for up to ``tile_size**2`` pairs.  All-pairs runs use the upper
triangle (``i < j``): diagonal tiles hold ``b (b - 1) / 2`` pairs, the others ``b**2``.
All-pairs tiles hold only their row and column ranges (the pairs are generated when the
tile is sent), and are generated lazily, so a run of 100,000 scans never holds its 5e9
pairs in memory.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

__all__ = ["Tile", "all_pairs_tiles", "count_all_pairs_tiles", "listed_tiles"]


@dataclass(frozen=True)
class Tile:
    """One block of the pair matrix.

    Attributes
    ----------
    row_block, col_block : int
        Block coordinates (block = ``tile_size`` consecutive scan indices).
    rows, cols : range
        Scan indices of the block of rows and of columns (all-pairs tiles: the tile is
        every ``(i, j)`` with ``i`` in rows, ``j`` in cols and ``i < j``).
    listed : tuple of (int, int) or None
        The tile's pairs when they were listed explicitly (one-vs-many, pairs).
    """

    row_block: int
    col_block: int
    rows: range = range(0)
    cols: range = range(0)
    listed: tuple[tuple[int, int], ...] | None = None

    @property
    def id(self) -> str:
        """``"RRRRR-CCCCC"``, the block coordinates (also in the file name)."""
        return f"{self.row_block:05d}-{self.col_block:05d}"

    @property
    def filename(self) -> str:
        return f"tile-{self.id}.parquet"

    @property
    def pairs(self) -> tuple[tuple[int, int], ...]:
        """The pairs ``(i, j)`` of the tile, ``i`` a row (reference ``a``), ``j`` a column."""
        if self.listed is not None:
            return self.listed
        return tuple((i, j) for i in self.rows for j in self.cols if i < j)

    @property
    def n_pairs(self) -> int:
        """Number of pairs, without generating them."""
        if self.listed is not None:
            return len(self.listed)
        if self.row_block == self.col_block:
            return len(self.rows) * (len(self.rows) - 1) // 2
        return len(self.rows) * len(self.cols)

    @property
    def scan_indices(self) -> list[int]:
        """Every scan the tile needs, rows first (each prepared once per tile)."""
        if self.listed is None:
            rows = list(self.rows)
            return rows + [j for j in self.cols if j not in self.rows]
        rows = sorted({i for i, _ in self.listed})
        cols = sorted({j for _, j in self.listed} - set(rows))
        return rows + cols


def _n_blocks(n: int, size: int) -> int:
    return (n + size - 1) // size


def count_all_pairs_tiles(n: int, size: int) -> int:
    """Number of non-empty tiles of an all-pairs run of ``n`` scans."""
    nb = _n_blocks(n, size)
    count = nb * (nb + 1) // 2
    # a diagonal block holding a single scan has no pair i < j
    singles = nb if size == 1 else int(n % size == 1)
    return count - singles


def all_pairs_tiles(n: int, size: int) -> Iterator[Tile]:
    """Tiles of the upper triangle ``i < j`` of ``n`` scans, row block by row block."""
    nb = _n_blocks(n, size)
    for rb in range(nb):
        rows = range(rb * size, min(n, (rb + 1) * size))
        for cb in range(rb, nb):
            tile = Tile(rb, cb, rows, range(cb * size, min(n, (cb + 1) * size)))
            if tile.n_pairs:
                yield tile


def listed_tiles(pairs: Sequence[tuple[int, int]], size: int) -> list[Tile]:
    """Tiles of an explicit list of pairs, grouped by ``(i // size, j // size)``.

    The order of the pairs within a tile follows the list.
    """
    groups: dict[tuple[int, int], list[tuple[int, int]]] = {}
    for i, j in pairs:
        groups.setdefault((i // size, j // size), []).append((int(i), int(j)))
    return [Tile(rb, cb, listed=tuple(ps)) for (rb, cb), ps in sorted(groups.items())]
