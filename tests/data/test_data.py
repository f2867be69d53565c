"""Datasets: offline ones load, image trees stream with the same result as in-memory data, data that is
not there fails with one line, and every model gets timm's own preprocessing."""

from __future__ import annotations

import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra.utils import instantiate
from PIL import Image

from helpers.images import truncate
from helpers.models import tiny_model
from sweep import data
from sweep.config import group_options
from sweep.data import imagescan
from sweep.errors import SweepConfigError
from sweep.training.evaluate import top1

OFFLINE = ["digits", "mnist", "synthetic"]


@pytest.mark.parametrize("name", OFFLINE)
def test_offline_datasets_load(compose, name):
    ds = instantiate(compose([f"dataset={name}"]).dataset)
    ds.check()
    assert isinstance(ds, data.Dataset) and ds.num_classes == 10
    for split in data.SPLITS:
        items = ds.items(split)
        img, label = items[0]
        assert len(items) > 0 and img.mode == "RGB" and 0 <= label < 10


def test_every_dataset_yaml_instantiates(compose):
    for name in group_options("dataset"):
        assert isinstance(instantiate(compose([f"dataset={name}"]).dataset), data.Dataset), name


def test_digits_and_mnist_splits_are_fixed_and_disjoint(compose):
    digits = instantiate(compose(["dataset=digits"]).dataset)
    assert len(digits.items("train")) + len(digits.items("eval")) == 1797
    assert len(digits.items("eval")) == pytest.approx(0.2 * 1797, abs=1)
    mnist = instantiate(compose(["dataset=mnist"]).dataset)
    a, b = mnist.items("eval"), instantiate(compose(["dataset=mnist"]).dataset).items("eval")
    assert (
        len(a) == 1000 and np.array_equal(a.labels, b.labels) and np.array_equal(a.images, b.images)
    )
    assert np.bincount(a.labels).tolist() == [100] * 10  # stratified


def test_preprocessing_is_timms_for_the_model():
    model = tiny_model("tiny_vit")
    _, cfg = data.preprocessing(model, 32)
    assert cfg["input_size"] == (3, 32, 32) and cfg["interpolation"] == "bicubic"  # test_vit's own
    import timm

    resnet = timm.create_model("resnet18", num_classes=10)
    transform, cfg = data.preprocessing(resnet, None)
    assert cfg["input_size"] == (3, 224, 224) and cfg["mean"] == pytest.approx(
        (0.485, 0.456, 0.406)
    )
    x = transform(Image.new("RGB", (300, 260), (124, 116, 104)))  # ImageNet's mean colour
    assert x.shape == (3, 224, 224) and x.abs().max() < 0.02


def test_image_tree_gives_the_same_top1_as_in_memory(digits_tree):
    """The same images through a DataLoader with workers from PNG files, and from memory."""
    in_memory = data.Digits()
    tree = data.ImageFolder(root=str(digits_tree), num_workers=2)
    tree.check(("train", "eval"))
    assert tree.num_classes == 10 and tree.classes[3] == "class_3"
    model = tiny_model("tiny_cnn")
    transform, _ = data.preprocessing(model, 32)
    a = data.Batches(in_memory, "eval", transform)
    b = data.Batches(tree, "eval", transform)
    assert len(a) == len(b) == 360
    assert not tree.in_memory and b.first(4).shape == (4, 3, 32, 32)
    acc_a = top1(model, a, 64, torch.device("cpu"))
    acc_b = top1(model, b, 64, torch.device("cpu"))
    assert abs(acc_a - acc_b) <= 1 / len(a) + 1e-9
    # the same split in a different file order still has the same labels per class folder
    xa, ya = next(iter(a.iterate(360)))
    xb, yb = next(iter(b.iterate(360)))
    assert sorted(ya.tolist()) == sorted(yb.tolist())


@pytest.mark.parametrize(
    "setup, needles",
    [
        ("no_root", ["needs dataset.root=PATH", "<class>/<image>"]),
        ("missing_root", ["does not exist", "<class>/<image>"]),
        ("missing_split", ["split folder", "val", "does not exist"]),
        ("empty_class", ["class_1", "has no readable images"]),
    ],
)
def test_missing_or_empty_image_tree_is_one_line(tmp_path, setup, needles):
    root = tmp_path / "tree"
    if setup != "missing_root":
        (root / "val" / "class_0").mkdir(parents=True)
        Image.new("RGB", (8, 8)).save(root / "val" / "class_0" / "a.png")
    if setup == "missing_split":
        (root / "val" / "class_0" / "a.png").unlink()
        (root / "val" / "class_0").rmdir()
        (root / "val").rmdir()
    if setup == "empty_class":
        (root / "val" / "class_1").mkdir()
    ds = data.ImageFolder(root=None if setup == "no_root" else str(root))
    with pytest.raises(SweepConfigError) as e:
        ds.check()
    msg = str(e.value)
    assert len(msg.splitlines()) == 1
    for needle in needles:
        assert needle in msg, (needle, msg)


def test_imagenet_synset_folders_map_into_the_1000_class_head(tmp_path):
    synsets = data.imagenet_synsets()
    assert len(synsets) == 1000 and synsets[0] == "n01440764"
    picked = [synsets[0], synsets[217], synsets[701]]  # tench, English springer, parachute
    for s in picked:
        (tmp_path / "val" / s).mkdir(parents=True)
        Image.new("RGB", (8, 8)).save(tmp_path / "val" / s / "x.png")
    ds = data.ImageFolder(root=str(tmp_path), class_map="imagenet")
    ds.check()
    assert ds.class_map == [0, 217, 701]
    (tmp_path / "val" / "cats").mkdir()
    Image.new("RGB", (8, 8)).save(tmp_path / "val" / "cats" / "x.png")
    with pytest.raises(SweepConfigError, match="not ImageNet synsets"):
        data.ImageFolder(root=str(tmp_path), class_map="imagenet").check()


def test_imagenette_preset_names_its_ten_classes(compose):
    ds = instantiate(compose(["dataset=imagenette"]).dataset)
    assert ds.num_classes == 10
    assert ds.class_map == [0, 217, 482, 491, 497, 566, 569, 571, 574, 701]


def test_cifar_offline_says_where_to_put_the_files(tmp_path, monkeypatch):
    import urllib.request

    def no_network(*a, **k):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(urllib.request, "urlopen", no_network)
    ds = data.Cifar("cifar10", root=str(tmp_path))
    with pytest.raises(SweepConfigError) as e:
        ds.check()
    msg = str(e.value)
    assert len(msg.splitlines()) == 1 and "cifar-10-python.tar.gz" in msg and str(tmp_path) in msg


def test_cifar_reads_files_that_are_there(tmp_path, monkeypatch):
    """torchvision's own reader over CIFAR-10's batch format, written here (its checksum check skipped)."""
    from torchvision.datasets import CIFAR10

    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for name in [
        "data_batch_1",
        "data_batch_2",
        "data_batch_3",
        "data_batch_4",
        "data_batch_5",
        "test_batch",
    ]:
        batch = {"data": rng.integers(0, 256, (4, 3072), dtype=np.uint8), "labels": list(range(4))}
        (folder / name).write_bytes(pickle.dumps(batch))
    (folder / "batches.meta").write_bytes(
        pickle.dumps({"label_names": [f"c{i}" for i in range(10)]})
    )
    import torchvision.datasets.cifar as tv_cifar

    monkeypatch.setattr(CIFAR10, "_check_integrity", lambda self: True)
    monkeypatch.setattr(tv_cifar, "check_integrity", lambda path, md5=None: True)
    ds = data.Cifar("cifar10", root=str(tmp_path), download=False)
    ds.check()
    assert len(ds.items("train")) == 20 and len(ds.items("eval")) == 4
    img, label = ds.items("eval")[2]
    assert img.size == (32, 32) and label == 2


# ---- unreadable files --------------------------------------------------------------------------------------
def test_scan_names_every_kind_of_unreadable_file(tmp_path, monkeypatch):
    folder = tmp_path / "val" / "a"
    folder.mkdir(parents=True)
    img = Image.fromarray(np.random.default_rng(0).integers(0, 255, (32, 32, 3), dtype=np.uint8))
    for name in ("good.png", "cut.png", "good.jpg", "cut.jpg"):
        img.save(folder / name)
    img.convert("L").save(folder / "grey.png")
    truncate(folder / "cut.png")
    truncate(folder / "cut.jpg")
    (folder / "text.png").write_text("not an image")
    (folder / "notes.txt").write_text("a README among the images")
    monkeypatch.setattr(imagescan, "_converts", lambda mode: mode != "L")
    scan = imagescan.scan(str(tmp_path / "val"), ("a",))
    assert [p.rsplit("/", 1)[1] for p, _ in scan.images] == ["good.jpg", "good.png"]
    why = {p.rsplit("/", 1)[1]: reason for p, reason in scan.unreadable}
    assert why.keys() == {"cut.jpg", "cut.png", "grey.png", "text.png"}
    assert why["cut.png"].startswith("truncated") and why["cut.jpg"].startswith("truncated")
    assert why["text.png"].startswith("not an image")
    assert why["grey.png"] == "unsupported image mode L"
    assert scan.ignored == 1 and all("\n" not in r for r in why.values())


def test_scan_decodes_only_the_files_it_suspects(tmp_path, monkeypatch):
    """Whole JPEG and PNG files are checked by their end marker: no pixel is decoded in the scan."""
    folder = tmp_path / "val" / "a"
    folder.mkdir(parents=True)
    noise = np.random.default_rng(0).integers(0, 255, (3, 64, 64, 3), dtype=np.uint8)
    for i in range(3):
        Image.fromarray(noise[i]).save(folder / f"{i}.png")
        Image.fromarray(noise[i]).save(folder / f"{i}.jpg")
    truncate(folder / "2.png")
    from PIL import ImageFile

    decoded = []
    load = ImageFile.ImageFile.load  # every file format's pixels are decoded through this

    def counting_load(self):
        decoded.append(self.filename)
        return load(self)

    monkeypatch.setattr(ImageFile.ImageFile, "load", counting_load)
    scan = imagescan.scan(str(tmp_path / "val"), ("a",))
    assert len(scan.images) == 5 and len(scan.unreadable) == 1
    assert [d.rsplit("/", 1)[-1] for d in decoded] == ["2.png"]


def test_unreadable_image_is_skipped_named_and_counted(corrupt_tree):
    root, bad = corrupt_tree
    tree = data.ImageFolder(root=str(root), num_workers=0)
    tree.check(("eval", "train"))
    assert len(tree.items("eval")) == 359 and len(tree.items("train")) == 1437
    notes = tree.notes()
    assert notes["data_unreadable_files"] == "1" and notes["data_ignored_files"] == "1"
    assert notes["data_unreadable_examples"].startswith(f"{bad}: truncated")
    with pytest.raises(SweepConfigError) as e:
        data.ImageFolder(root=str(root), on_bad_file="error").check()
    assert str(e.value).startswith(f"dataset imagefolder: unreadable image {bad}: truncated")
    assert len(str(e.value).splitlines()) == 1
    with pytest.raises(SweepConfigError, match="on_bad_file=ignore: choose skip or error"):
        data.ImageFolder(root=str(root), on_bad_file="ignore")


@pytest.mark.parametrize("workers", [0, 2])
def test_a_file_that_fails_only_when_decoded_is_dropped_from_its_batch(
    corrupt_tree, monkeypatch, workers, caplog
):
    """What the scan passes but still cannot be decoded: skip drops it (named in the log), error
    stops with its name."""
    root, _ = corrupt_tree
    tree = data.ImageFolder(root=str(root), num_workers=workers)
    tree.check()
    victim = tree._scan("eval").images[5][0]
    (root / "victim.png").write_bytes(Path(victim).read_bytes())
    truncate(Path(victim), 0.3)  # broken after the scan
    try:
        transform, _ = data.preprocessing(tiny_model("tiny_cnn"), 32)
        seen = sum(len(y) for _, y in data.Batches(tree, "eval", transform).iterate(64))
        assert seen == 358
        if workers == 0:
            assert any(victim in r.getMessage() for r in caplog.records)
        strict = data.ImageFolder(root=str(root), num_workers=workers, on_bad_file="error")
        strict._scans["eval"] = tree._scan("eval")
        with pytest.raises(Exception, match=f"unreadable image {victim}"):
            list(data.Batches(strict, "eval", transform).iterate(64))
    finally:
        shutil.move(root / "victim.png", victim)
