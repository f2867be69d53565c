"""timm models: the factory (`factory`, re-exported here), a model's weights for a job (`weights`:
pretrained, fitted or trained heads, cached) and a pruned model saved and loaded back (`artifacts`)."""

from sweep.models.factory import build_model

# where a user's pruner found them before they moved to sweep.pruners (kept for that code)
from sweep.pruners.layers import classifiers_of, prunable_layers

__all__ = ["build_model", "classifiers_of", "prunable_layers"]
