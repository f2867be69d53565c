"""Training and evaluation: the loops (`loops`, re-exported here: fine-tuning, sparse training, linear
probes, with their budget and divergence rule) and top-1 (`evaluate`)."""

from sweep.training.loops import (
    FAR_ABOVE_CHANCE,
    LOSS_WINDOW,
    Budget,
    Distill,
    TrainResult,
    features,
    linear_probe,
    train,
    zero_masks,
)

__all__ = [
    "FAR_ABOVE_CHANCE",
    "LOSS_WINDOW",
    "Budget",
    "Distill",
    "TrainResult",
    "features",
    "linear_probe",
    "train",
    "zero_masks",
]
