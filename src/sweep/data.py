"""Datasets: small, offline, held as tensors.

A dataset yields images in [0, 1] at their native size; `to_model_input` resizes and normalises a batch
for a given model input size, so one cached copy serves every model of a sweep.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class Split:
    images: torch.Tensor  # (N, C, H, W), float in [0, 1]
    labels: torch.Tensor  # (N,), int64

    def __len__(self) -> int:
        return len(self.labels)

    def head(self, n: int | None) -> Split:
        return self if n is None or n >= len(self) else Split(self.images[:n], self.labels[:n])


class Dataset:
    name: str
    num_classes: int

    def train(self) -> Split:
        raise NotImplementedError

    def eval(self) -> Split:
        raise NotImplementedError

    def describe(self) -> dict:
        """Settings that identify the data (part of the trained-weights cache key)."""
        return {"name": self.name}


@functools.lru_cache(maxsize=1)
def _digits() -> tuple[torch.Tensor, torch.Tensor]:
    """The digits as tensors, read once per process (every job of a sweep uses them)."""
    from sklearn.datasets import load_digits

    d = load_digits()
    return torch.tensor(d.images, dtype=torch.float32).div_(16.0).unsqueeze(1), torch.tensor(
        d.target, dtype=torch.int64
    )


class Digits(Dataset):
    """scikit-learn's bundled 8x8 digits; a fixed, stratified, seeded train/eval split."""

    num_classes = 10

    def __init__(self, name: str = "digits", eval_fraction: float = 0.2, split_seed: int = 0):
        if not 0.0 < eval_fraction < 1.0:
            raise ValueError(f"dataset.eval_fraction={eval_fraction} must be in (0, 1)")
        self.name = name
        self.eval_fraction = eval_fraction
        self.split_seed = split_seed
        self._splits: tuple[Split, Split] | None = None

    def _load(self) -> tuple[Split, Split]:
        if self._splits is None:
            from sklearn.model_selection import train_test_split

            images, labels = _digits()
            idx_train, idx_eval = train_test_split(
                torch.arange(len(labels)).numpy(),
                test_size=self.eval_fraction,
                random_state=self.split_seed,
                stratify=labels.numpy(),
            )
            self._splits = (
                Split(images[idx_train], labels[idx_train]),
                Split(images[idx_eval], labels[idx_eval]),
            )
        return self._splits

    def train(self) -> Split:
        return self._load()[0]

    def eval(self) -> Split:
        return self._load()[1]

    def describe(self) -> dict:
        return {
            "name": self.name,
            "eval_fraction": self.eval_fraction,
            "split_seed": self.split_seed,
        }


class Synthetic(Dataset):
    """Random images and labels: latency-only work; accuracy on it is at chance by construction."""

    def __init__(
        self,
        name: str = "synthetic",
        num_classes: int = 10,
        train_size: int = 256,
        eval_size: int = 256,
        seed: int = 0,
        image_size: int = 32,
    ):
        self.name = name
        self.num_classes = num_classes
        g = torch.Generator().manual_seed(seed)
        self._train = Split(
            torch.rand(train_size, 3, image_size, image_size, generator=g),
            torch.randint(0, num_classes, (train_size,), generator=g),
        )
        self._eval = Split(
            torch.rand(eval_size, 3, image_size, image_size, generator=g),
            torch.randint(0, num_classes, (eval_size,), generator=g),
        )
        self._desc = {
            "name": name,
            "num_classes": num_classes,
            "train_size": train_size,
            "eval_size": eval_size,
            "seed": seed,
            "image_size": image_size,
        }

    def train(self) -> Split:
        return self._train

    def eval(self) -> Split:
        return self._eval

    def describe(self) -> dict:
        return dict(self._desc)


def to_model_input(images: torch.Tensor, size: int) -> torch.Tensor:
    """Resize a batch to `size` x `size`, give it 3 channels and normalise to roughly [-1, 1]."""
    if images.shape[-1] != size or images.shape[-2] != size:
        images = F.interpolate(images, size=(size, size), mode="bilinear", align_corners=False)
    if images.shape[1] == 1:
        images = images.expand(-1, 3, -1, -1)
    return (images - 0.5) / 0.5
