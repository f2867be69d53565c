"""Image trees for the data tests: ImageFolder trees of PNG files, and damage done to them."""

from __future__ import annotations


def write_tree(root, items, split_name, classes=None):
    """An ImageFolder tree of PNG files from (PIL image, label) items."""
    for i in range(len(items)):
        img, label = items[i]
        folder = root / split_name / (classes[label] if classes else f"class_{label}")
        folder.mkdir(parents=True, exist_ok=True)
        img.save(folder / f"{i:05d}.png")


def truncate(path, keep=0.5):
    raw = path.read_bytes()
    path.write_bytes(raw[: int(len(raw) * keep)])
