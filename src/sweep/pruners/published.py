"""Published pruned architectures as a method: timm ships the architectures Knapsack pruning found
(Aflalo et al. 2020, "Knapsack Pruning with Inner Distillation") for a few of its models. For a model
with such a variant, this method's pruned model *is* that architecture: built fresh (its pretrained
weights where the job's weights policy finds them, else timm's initialisation, trained by fine-tuning
like any pruned model) and then measured and reported like every method, beside the others at the same
cost (`target.macs=published`). Its cost is the publication's: `ratio` does not change it.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn as nn

from sweep.pruners.base import Calibration, Family, NotApplicable, PruneKind, Pruner

PUBLISHED_FAMILY = Family("published", "Published pruned architectures (timm: Knapsack pruning)", 5)

# timm's model -> its published pruned variant
PUBLISHED = {
    "efficientnet_b1": "efficientnet_b1_pruned",
    "efficientnet_b2": "efficientnet_b2_pruned",
    "efficientnet_b3": "efficientnet_b3_pruned",
    "efficientnet_es": "efficientnet_es_pruned",
    "efficientnet_el": "efficientnet_el_pruned",
    "ecaresnet50d": "ecaresnet50d_pruned",
    "ecaresnet101d": "ecaresnet101d_pruned",
}


def published_of(model_name: str) -> str | None:
    """The published pruned variant of a timm model (tags like `.ra_in1k` ignored), or None."""
    return PUBLISHED.get(model_name.split(".")[0])


def no_variant(model_name: str) -> str:
    return (
        f"timm publishes no pruned variant of {model_name}; it does of "
        f"{', '.join(sorted(PUBLISHED))}"
    )


def random_start(name: str, num_classes: int) -> nn.Module:
    import timm

    return timm.create_model(name, num_classes=num_classes)


class TimmPublished(Pruner):
    kind = PruneKind.STRUCTURAL
    family = PUBLISHED_FAMILY
    ratio_means = "not used: the published architecture's own cost"

    def __init__(self, name: str):
        super().__init__(name)
        self.model_name = ""
        # builds the published architecture with its starting weights; a job sets its weights policy
        self.start: Callable[[str, int], nn.Module] = random_start

    def check(
        self, model: nn.Module, model_name: str, example_inputs: torch.Tensor | None = None
    ) -> None:
        if published_of(model_name) is None:
            raise NotApplicable(no_variant(model_name))
        self.model_name = model_name

    def prune(
        self,
        model: nn.Module,
        ratio: float,
        example_inputs: torch.Tensor,
        calibration: Calibration | None = None,
    ) -> nn.Module:
        name = published_of(self.model_name or type(model).__name__)
        if name is None:
            raise NotApplicable(no_variant(self.model_name or type(model).__name__))
        device = next(model.parameters()).device
        published = self.start(name, model.num_classes).to(device)
        return published.train(model.training)
