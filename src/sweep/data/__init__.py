"""Datasets: what a job trains, fine-tunes and evaluates on, through the model's own preprocessing.

A dataset gives two splits (`train`, `eval`) of (PIL image, label) items. `Batches` turns a split into
model-ready batches with the transform timm's own validation uses for the model (`preprocessing`):
small offline datasets are transformed once per process and kept as tensors (every job of a sweep
reuses them); an image tree is streamed through a DataLoader with workers, never held whole.

Labels are the dataset's classes 0..num_classes-1. A dataset whose classes are ImageNet classes
(`imagenet`, `imagenette`, an ImageFolder named by synsets) also gives `class_map`, the index of each
of its classes in the 1000-class ImageNet head, so a pretrained model can keep its own classifier.
"""

from sweep.data.batches import *  # noqa: F403
from sweep.data.datasets import *  # noqa: F403
from sweep.data.images import *  # noqa: F403
