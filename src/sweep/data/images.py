"""Image trees (ImageFolder layout, or ImageNet synsets): found, scanned for unreadable files before
any model is built, and streamed."""

from __future__ import annotations

import functools
import logging
import os
from pathlib import Path

import torch.utils.data as tud
from PIL import Image

from sweep import tracking
from sweep.data import imagescan
from sweep.data.datasets import Dataset
from sweep.errors import SweepConfigError, one_line

log = logging.getLogger(__name__)


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
