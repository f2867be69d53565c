"""Which files of an image tree a job can read, found before any model is built.

A real tree (ImageNet among them) carries a few files that are truncated, not images at all, or in a
mode that does not convert to RGB. A scan lists each split once per process: every image file's header
is read (cheap: no pixels are decoded), and JPEG and PNG files, what real trees hold, are checked for
their end marker, so a truncated one is found without decoding it; only a file that fails that check,
or a file of another format, is decoded in the scan. A 50,000-image ImageNet val is therefore read but
not decoded twice. Files in class folders whose suffix is not an image's are ignored and counted.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image

from sweep.errors import one_line

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")
ON_BAD_FILE = ("skip", "error")
EXAMPLES = 3  # unreadable files named in a run's tag and the log line


@dataclass(frozen=True)
class Scan:
    """One split of a tree: its readable images (path, class folder), the unreadable ones (path,
    reason) and how many other files its class folders hold."""

    images: list[tuple[str, str]] = field(default_factory=list)
    unreadable: list[tuple[str, str]] = field(default_factory=list)
    ignored: int = 0

    def examples(self, n: int = EXAMPLES) -> str:
        return "; ".join(f"{path}: {why}" for path, why in self.unreadable[:n])


@functools.cache
def _converts(mode: str) -> bool:
    try:
        Image.new(mode, (1, 1)).convert("RGB")
        return True
    except Exception:
        return False


def _tail(path: str, n: int = 16) -> bytes:
    with open(path, "rb") as f:
        f.seek(0, os.SEEK_END)
        f.seek(max(0, f.tell() - n))
        return f.read()


def _ends_whole(path: str, fmt: str | None) -> bool:
    """The file ends where its format says it ends (JPEG's EOI marker, PNG's IEND chunk); False for
    other formats and for a file cut short."""
    if fmt == "JPEG":  # some writers pad after EOI
        return _tail(path, 64).rstrip(b"\x00").endswith(b"\xff\xd9")
    if fmt == "PNG":
        return _tail(path).endswith(b"IEND\xaeB`\x82")
    return False


def problem(path: str) -> str | None:
    """Why `path` cannot be read as an RGB image, in one line; None when it can."""
    try:
        with Image.open(path) as img:
            if not _converts(img.mode):
                return f"unsupported image mode {img.mode}"
            if not _ends_whole(path, img.format):
                img.load()  # a suspicious or rarer file: decoding it is the only proof
    except Exception as e:  # PIL raises OSError, SyntaxError, ValueError, ... for broken files
        return _reason(e)
    return None


def _reason(e: Exception) -> str:
    text = one_line(e)  # "Type: message"
    if "cannot identify image file" in text:
        return "not an image (PIL cannot identify it)"
    if "truncated" in text.lower():
        return f"truncated ({text})"
    return text


@functools.lru_cache(maxsize=8)
def scan(split_dir: str, classes: tuple[str, ...]) -> Scan:
    """Every file of `split_dir/<class>/...` for the given class folders, sorted as torchvision's
    ImageFolder sorts them; cached per process (every job of a sweep shares one scan)."""
    images, unreadable, ignored = [], [], 0
    for cls in classes:
        folder = Path(split_dir) / cls
        if not folder.is_dir():
            continue
        for root, _dirs, files in sorted(os.walk(folder, followlinks=True)):
            for name in sorted(files):
                path = os.path.join(root, name)
                if name.startswith(".") or not name.lower().endswith(IMAGE_SUFFIXES):
                    ignored += 1
                    continue
                why = problem(path)
                if why is None:
                    images.append((path, cls))
                else:
                    unreadable.append((path, why))
    return Scan(images, unreadable, ignored)
