"""Torch-Pruning (DepGraph): channels are removed from every layer coupled to them, so the model really
shrinks. The importance criterion is a separate object (conf/pruner/dg_*.yaml `importance:`)."""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator

import torch
import torch.nn as nn

from sweep.pruners import timm_blocks, timm_checks
from sweep.pruners.base import Calibration, Family, NotApplicable, PruneKind, Pruner
from sweep.pruners.layers import classifiers_of

DEPGRAPH = Family("depgraph", "DepGraph: towards any structural pruning (Torch-Pruning)", 1)


class DepGraphPruner(Pruner):
    kind = PruneKind.STRUCTURAL
    family = DEPGRAPH
    ratio_means = (
        "fraction of channels removed from each dependency group (coupled layers pruned together)"
    )

    def __init__(
        self,
        name: str,
        importance,
        global_pruning: bool = False,
        max_pruning_ratio: float = 1.0,
        isomorphic: bool = False,
        round_to: int | None = None,
        calibration_batches: int = 0,
        preflight: bool = True,
    ):
        super().__init__(name)
        if isomorphic and not global_pruning:
            raise ValueError("isomorphic pruning ranks groups globally: set global_pruning: true")
        if not 0 < max_pruning_ratio <= 1:
            raise ValueError(f"max_pruning_ratio={max_pruning_ratio}: choose a number in (0, 1]")
        self.importance = importance
        self.global_pruning = global_pruning
        self.max_pruning_ratio = max_pruning_ratio
        self.isomorphic = isomorphic
        self.round_to = round_to
        self.calibration_batches = calibration_batches
        self.preflight = preflight  # check() prunes a copy first (see timm_checks.check_prunable)
        if isomorphic:
            self.ratio_means = (
                "fraction of channels removed over each set of isomorphic groups (one ranking per "
                f"set), no group losing more than {max_pruning_ratio:g} of its channels"
            )
        elif global_pruning:
            self.ratio_means = (
                "fraction of all channels removed (one global ranking; layers end with different "
                f"widths), no group losing more than {max_pruning_ratio:g} of its channels"
            )

    def check(
        self, model: nn.Module, model_name: str, example_inputs: torch.Tensor | None = None
    ) -> None:
        self.kept_dense = ()
        why = timm_checks.refusal(model)
        if why is not None:
            raise NotApplicable(f"{model_name} cannot be pruned structurally: {why}")
        check = getattr(self.importance, "check", None)
        if check is not None:
            check(model, model_name)
        if self.preflight and example_inputs is not None:
            # the same method on a copy, at 0.5: a model the library cannot prune fails here in one
            # line, before weights are trained. Noise shaped like the example, as input and as the one
            # calibration batch: no data split is read for a check
            x = torch.randn_like(example_inputs)
            cal = Calibration([(x, torch.zeros(len(x), dtype=torch.long, device=x.device))])

            def trial(m: nn.Module) -> nn.Module:
                return self.prune(m, 0.5, x, cal)

            try:
                timm_checks.check_prunable(trial, model, x, model_name)
            except NotApplicable:
                # where some layers break the library, prune the rest and keep those dense: found by
                # pruning a copy group by group; refused as before when that does not work either
                kept = timm_checks.find_unprunable(
                    lambda m, keep: self._pruner(
                        m, 0.5, example_inputs=x, calibration=cal, kept_dense=keep
                    ),
                    model,
                    x,
                )
                if not kept:
                    raise
                self.kept_dense = kept
                timm_checks.check_prunable(trial, model, x, model_name)

    @contextlib.contextmanager
    def _pruner(
        self,
        model: nn.Module,
        ratio: float,
        example_inputs: torch.Tensor,
        calibration: Calibration | None,
        kept_dense: tuple[str, ...] = (),
        global_pruning: bool | None = None,
        library_pruner: str = "BasePruner",
        **library_args,
    ) -> Iterator:
        """Torch-Pruning's `library_pruner` for `model`, calibrated, ready to step; layers matching
        `kept_dense` (timm_checks.layer_pattern) left whole; timm's fields follow the step."""
        import torch_pruning as tp

        timm_blocks.rewrite(model)
        attns = timm_blocks.attention_blocks(model)
        setup = timm_blocks.configure(model)
        kept = timm_checks.layers_matching(model, kept_dense)
        with setup.around(), warnings.catch_warnings():
            # Layer scales, class tokens and position embeddings are found by Torch-Pruning itself and
            # pruned along their last non-singleton dim, which is their channel dim in timm's models.
            warnings.filterwarnings("ignore", message="Unwrapped parameters detected")
            pruner = getattr(tp.pruner, library_pruner)(
                model,
                example_inputs,
                importance=self.importance,
                pruning_ratio=ratio,
                global_pruning=self.global_pruning if global_pruning is None else global_pruning,
                max_pruning_ratio=self.max_pruning_ratio,
                isomorphic=self.isomorphic,
                ignored_layers=classifiers_of(model) + setup.ignored_params + kept,
                customized_pruners=setup.customized_pruners,
                round_to=self.round_to,
                num_heads={a.qkv: a.num_heads for a in attns},
                # Torch-Pruning's defaults for these are dicts shared by every call, which it writes
                # into: each pruned model's layers would stay referenced (and alive) for the process.
                in_channel_groups={},
                out_channel_groups={},
                channel_groups={},
                **library_args,
            )
            self._calibrate(model, calibration)
            yield timm_checks.Session(
                pruner,
                lambda: timm_blocks.after_pruning(
                    model, {a: pruner.num_heads.get(a.qkv, a.num_heads) for a in attns}
                ),
            )

    def _calibrate(self, model: nn.Module, calibration: Calibration | None) -> None:
        """Gradients for the criteria that read them (Taylor, Hessian), from train batches."""
        calibrate = getattr(self.importance, "calibrate", None)
        if calibrate is None:
            return
        if calibration is None or not calibration.batches:
            raise RuntimeError(f"{self.name} needs calibration batches from the train split")
        # the gradients of the model as it predicts (eval mode: BatchNorm's running statistics, so
        # a batch read in parts gives the batch's gradients)
        was_training = model.training
        try:
            with torch.enable_grad():
                calibrate(model.eval(), calibration)
        finally:
            model.train(was_training)

    def prune(
        self,
        model: nn.Module,
        ratio: float,
        example_inputs: torch.Tensor,
        calibration: Calibration | None = None,
    ) -> nn.Module:
        return self._step(
            model, ratio, example_inputs, calibration=calibration, global_pruning=None
        )

    def refine(
        self,
        model: nn.Module,
        ratio: float,
        example_inputs: torch.Tensor,
        calibration: Calibration | None = None,
    ) -> nn.Module:
        """The same criterion ranked across every group with one threshold (Torch-Pruning's global
        ranking), so a small ratio removes the few lowest-ranked units wherever they are: single
        `round_to` or grouped-convolution steps, not one step in every group at once."""
        return self._step(
            model, ratio, example_inputs, calibration=calibration, global_pruning=True
        )

    def _step(self, model, ratio, example_inputs, calibration, global_pruning) -> nn.Module:
        if global_pruning or (global_pruning is None and self.global_pruning):
            # past its cap, Torch-Pruning's global ranking skips the groups that would exceed it, so
            # the model would get larger again as the ratio grows
            ratio = min(ratio, self.max_pruning_ratio)
        with self._pruner(
            model,
            ratio,
            example_inputs=example_inputs,
            calibration=calibration,
            kept_dense=self.kept_dense,
            global_pruning=global_pruning,
        ) as s:
            with torch.no_grad():
                s.pruner.step()
            s.sync()
        model.zero_grad(set_to_none=True)
        return model
