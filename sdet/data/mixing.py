"""Training on several datasets at once with given ratios (``data.mix``), resumably.

The training stream (see :mod:`sdet.engine.sampler`) hands each element its position p.
:class:`MixSchedule` maps p to a sample of the concatenated datasets as a pure function of
(seed, p): positions come in blocks of ``block``; every block holds a fixed quota of each
dataset (the ratios rounded by largest remainder, so they hold exactly per block), in an
order shuffled by (seed, block). The k-th draw of dataset d takes element k of d's own
stream of seeded epoch permutations, so every dataset is still seen epoch by epoch.
Nothing depends on earlier batches or loader workers: resuming at step s yields the
batches an uninterrupted run would have seen.
"""
from __future__ import annotations

from typing import Dict, List, Sequence, Tuple

import numpy as np

from sdet.config import MixSource
from sdet.data.formats import load_samples
from sdet.data.sample import Sample
from sdet.errors import UserError

BLOCK = 1000
# Seed-sequence tags keeping the mix's random streams apart from the sampler's [seed, epoch].
_ORDER_TAG = 0x6D69786F  # block order
_PERM_TAG = 0x6D697870  # per-dataset epoch permutations


def block_quotas(ratios: Sequence[float], block: int = BLOCK) -> np.ndarray:
    """Draws per dataset in a block: ``block * ratio / sum``, rounded by largest remainder."""
    weights = np.asarray(ratios, dtype=np.float64)
    exact = weights / weights.sum() * block
    quotas = np.floor(exact).astype(np.int64)
    short = block - int(quotas.sum())
    order = np.argsort(-(exact - quotas), kind="stable")
    quotas[order[:short]] += 1
    return quotas


class MixSchedule:
    """Position in the training stream -> index into the concatenated mixed datasets."""

    def __init__(self, sizes: Sequence[int], ratios: Sequence[float], seed: int, block: int = BLOCK):
        if len(sizes) != len(ratios) or not sizes:
            raise ValueError("need one ratio per dataset, and at least one dataset")
        if min(sizes) <= 0:
            raise ValueError("cannot mix an empty dataset")
        self.sizes = [int(s) for s in sizes]
        self.offsets = np.concatenate([[0], np.cumsum(self.sizes)[:-1]]).astype(np.int64)
        self.quotas = block_quotas(ratios, block)
        if self.quotas.min() <= 0:
            raise ValueError(f"a ratio is too small to be drawn even once per {block} samples")
        self.seed = seed
        self.block = block
        self._labels = np.repeat(np.arange(len(self.sizes)), self.quotas)
        self._order: Tuple[int, np.ndarray, np.ndarray] = (-1, self._labels, self._labels)
        self._perms: Dict[Tuple[int, int], np.ndarray] = {}

    def _block(self, block: int) -> Tuple[np.ndarray, np.ndarray]:
        """Dataset of each offset in ``block`` and how many earlier offsets drew the same dataset."""
        if self._order[0] != block:
            labels = np.random.default_rng([self.seed, _ORDER_TAG, block]).permutation(self._labels)
            rank = np.empty_like(labels)
            for d in range(len(self.sizes)):
                where = np.flatnonzero(labels == d)
                rank[where] = np.arange(len(where))
            self._order = (block, labels, rank)
        return self._order[1], self._order[2]

    def _perm(self, dataset: int, epoch: int) -> np.ndarray:
        key = (dataset, epoch)
        if key not in self._perms:
            if len(self._perms) > 4 * len(self.sizes):
                self._perms.clear()
            rng = np.random.default_rng([self.seed, _PERM_TAG, dataset, epoch])
            self._perms[key] = rng.permutation(self.sizes[dataset])
        return self._perms[key]

    def dataset_at(self, position: int) -> int:
        block, offset = divmod(position, self.block)
        return int(self._block(block)[0][offset])

    def index(self, position: int) -> int:
        block, offset = divmod(position, self.block)
        labels, rank = self._block(block)
        d = int(labels[offset])
        draw = block * int(self.quotas[d]) + int(rank[offset])  # draws of dataset d before this one
        epoch, within = divmod(draw, self.sizes[d])
        return int(self.offsets[d] + self._perm(d, epoch)[within])


class MixedSamples(List[Sample]):
    """The samples of several datasets back to back, remembering each dataset's size and ratio.

    A plain list to everything that only reads samples; :class:`~sdet.data.datasets.TrainDataset`
    sees the sizes and ratios and draws through a :class:`MixSchedule`.
    """

    def __init__(self, parts: Sequence[Tuple[str, List[Sample], float]]):
        super().__init__(s for _, samples, _ in parts for s in samples)
        self.names = [name for name, _, _ in parts]
        self.sizes = [len(samples) for _, samples, _ in parts]
        self.ratios = [float(ratio) for _, _, ratio in parts]

    def schedule(self, seed: int) -> MixSchedule:
        return MixSchedule(self.sizes, self.ratios, seed)


def load_mix(sources: Sequence[MixSource], skip_bad: bool = False) -> MixedSamples:
    """Read every dataset of ``data.mix``; bad entries are errors naming ``data.mix[i]``."""
    parts = []
    for i, source in enumerate(sources):
        where = f"<config: data.mix[{i}]>"
        if not source.name or not source.root:
            raise UserError(f"each data.mix entry needs a name and a root (e.g. data.mix.{i}.root=/data/...)", where)
        if not source.ratio > 0:
            raise UserError(f"ratio must be > 0, got {source.ratio}", where)
        samples = load_samples(source.name, source.root, source.split, skip_bad=skip_bad)
        parts.append((f"{source.name}:{source.root}:{source.split}", samples, source.ratio))
    mixed = MixedSamples(parts)
    if min(block_quotas(mixed.ratios)) <= 0:
        raise UserError(f"a data.mix ratio is too small: each dataset must get at least 1 of {BLOCK} draws", "<config: data.mix>")
    return mixed
