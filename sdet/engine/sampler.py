"""A resumable, seeded stream of training batches.

The stream is the concatenation of seeded per-epoch permutations. Each element carries
its position in the stream, which seeds that sample's augmentation, so the batch at a
given step is a pure function of (seed, step): resuming at step s reproduces exactly the
batches an uninterrupted run would have seen, whatever the number of loader workers.
"""
from __future__ import annotations

from typing import Iterator, List, Optional, Tuple

import numpy as np


class StreamBatchSampler:
    """Yields lists of (stream_position, dataset_index), `batch_size` per step, from `start_step` on."""

    def __init__(self, num_samples: int, batch_size: int, seed: int, start_step: int = 0,
                 start_position: Optional[int] = None):
        """`start_position` (samples already consumed) overrides `start_step * batch_size`: a run resumed
        with another global batch (another world size) continues at the same place in the stream."""
        if num_samples <= 0:
            raise ValueError("cannot sample from an empty dataset")
        self.n = num_samples
        self.batch_size = batch_size
        self.seed = seed
        self.start_position = start_step * batch_size if start_position is None else start_position

    def _epoch(self, epoch: int) -> np.ndarray:
        return np.random.default_rng([self.seed, epoch]).permutation(self.n)

    def __iter__(self) -> Iterator[List[Tuple[int, int]]]:
        pos = self.start_position
        epoch, offset = divmod(pos, self.n)
        perm = self._epoch(epoch)
        while True:
            batch = []
            for _ in range(self.batch_size):
                if offset == self.n:
                    epoch, offset = epoch + 1, 0
                    perm = self._epoch(epoch)
                batch.append((pos, int(perm[offset])))
                pos += 1
                offset += 1
            yield batch


class LocalBatchSampler:
    """This process's slice of every global batch of a StreamBatchSampler (see engine/distributed.py)."""

    def __init__(self, stream: StreamBatchSampler, info):
        from sdet.engine.distributed import local_slice

        self.stream = stream
        self.info = info
        self._slice = local_slice

    def __iter__(self) -> Iterator[List[Tuple[int, int]]]:
        for batch in self.stream:
            yield self._slice(batch, self.info)
