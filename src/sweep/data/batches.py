"""Batches: a split turned into model-ready batches with the transform timm's own validation uses for
the model (`preprocessing`); small splits transformed once per process and kept as tensors, larger
ones streamed through a DataLoader with workers."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Iterator

import torch
import torch.utils.data as tud

from sweep.data.datasets import Dataset

log = logging.getLogger(__name__)

# A small split is transformed once and kept as tensors up to this size; a larger one is streamed.
MAX_PREPARED_BYTES = 1 << 30


def preprocessing(model: torch.nn.Module, input_size: int | None) -> tuple[Callable, dict]:
    """The eval transform timm's validation uses for `model` (resize, crop_pct, interpolation,
    mean/std), at `input_size` when the config sets one; and the resolved data config."""
    from timm.data import create_transform, resolve_data_config

    args = {"input_size": (3, input_size, input_size)} if input_size else {}
    cfg = resolve_data_config(args, model=model)
    return create_transform(**cfg, is_training=False), cfg


def _stack(items: tud.Dataset, transform: Callable) -> tuple[torch.Tensor, torch.Tensor]:
    pairs = [items[i] for i in range(len(items))]
    return torch.stack([transform(img) for img, _ in pairs]), torch.tensor([y for _, y in pairs])


_PREPARED: dict[tuple, tuple[torch.Tensor, torch.Tensor]] = {}


def _prepared(
    dataset: Dataset, split: str, items: tud.Dataset, transform: Callable
) -> tuple[torch.Tensor, torch.Tensor]:
    """A small split, transformed once per process: every job of a sweep with the same data and the
    same preprocessing reuses it."""
    import json

    key = (json.dumps(dataset.describe(), sort_keys=True, default=str), split, repr(transform))
    if key not in _PREPARED:
        if len(_PREPARED) >= 8:
            _PREPARED.pop(next(iter(_PREPARED)))
        _PREPARED[key] = _stack(items, transform)
    return _PREPARED[key]


class Batches:
    """One split of a dataset as model-ready (images, labels) batches. The split's items are read when
    first needed (a train split that nothing trains on is never listed) and shared with `head`."""

    def __init__(
        self,
        dataset: Dataset,
        split: str,
        transform: Callable,
        limit: int | None = None,
        items: tud.Dataset | None = None,
    ):
        self.dataset, self.split, self.transform, self.limit = dataset, split, transform, limit
        self._given = items

    @functools.cached_property
    def _items(self) -> tud.Dataset:
        return self._given if self._given is not None else self.dataset.items(self.split)

    def __len__(self) -> int:
        return len(self._items) if self.limit is None else min(self.limit, len(self._items))

    def head(self, n: int | None) -> Batches:
        limit = n if self.limit is None else min(n, self.limit)
        return Batches(self.dataset, self.split, self.transform, limit=limit, items=self._items)

    def first(self, n: int) -> torch.Tensor:
        """The first n images (repeated if the split is smaller), for counting and timing."""
        x, _ = next(iter(self.iterate(min(n, len(self)))))
        return x.repeat((n + len(x) - 1) // len(x), 1, 1, 1)[:n] if len(x) < n else x

    @functools.cached_property
    def _fits_in_memory(self) -> bool:
        if not self.dataset.in_memory or len(self._items) == 0:
            return False
        one = self.transform(self._items[0][0])
        return len(self._items) * one.numel() * one.element_size() <= MAX_PREPARED_BYTES

    def iterate(
        self, batch_size: int, shuffle: bool = False, seed: int = 0
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        if self._fits_in_memory:
            x, y = _prepared(self.dataset, self.split, self._items, self.transform)
            x, y = x[: len(self)], y[: len(self)]
            order = (
                torch.randperm(len(y), generator=torch.Generator().manual_seed(seed))
                if shuffle
                else None
            )
            for i in range(0, len(y), batch_size):
                idx = order[i : i + batch_size] if order is not None else slice(i, i + batch_size)
                yield x[idx], y[idx]
            return
        yield from self._loader(batch_size, shuffle, seed)

    def _loader(self, batch_size: int, shuffle: bool, seed: int):
        items = _Transformed(self._items, self.transform)
        if self.limit is not None:
            items = tud.Subset(items, range(len(self)))
        workers = self.dataset.num_workers
        loader = tud.DataLoader(
            items,
            batch_size=batch_size,
            shuffle=shuffle,
            num_workers=workers,
            multiprocessing_context=_worker_start() if workers else None,
            generator=torch.Generator().manual_seed(seed),
            persistent_workers=False,
            prefetch_factor=4 if workers else None,
            collate_fn=_collate,
        )
        yield from (batch for batch in loader if batch is not None)


def _worker_start():
    """How loader workers start: forked (the default, fastest), except in a process where OpenVINO
    has run: a fork of it crashes (its thread pool's state is copied without its threads), so they
    are forked from a clean server process instead, started once with torch and this module
    imported (a worker started bare would import them again, seconds per loader)."""
    import multiprocessing
    import sys

    if "openvino" not in sys.modules or sys.platform == "win32":
        return None
    server = multiprocessing.get_context("forkserver")
    server.set_forkserver_preload(["torch", "PIL.Image", __name__])
    return server


class _Transformed(tud.Dataset):
    def __init__(self, items: tud.Dataset, transform: Callable):
        self.items, self.transform = items, transform

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int):
        item = self.items[i]
        return None if item is None else (self.transform(item[0]), item[1])


def _collate(batch: list):
    """A batch without the items that could not be read (None); None when none could."""
    kept = [b for b in batch if b is not None]
    return tud.default_collate(kept) if kept else None


# ---- image trees -----------------------------------------------------------------------------------------
