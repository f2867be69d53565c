"""Checks of a timm model before and while it is pruned structurally: blocks refused outright
(`refusal`, measured where even trying costs too much), `check_prunable` (prune a copy, run it, and
name the timm block where it fails), and the layers to keep whole where some break the library
(`find_unprunable`, `layers_matching`). What the blocks need to be pruned at all is `timm_blocks`'.
"""

from __future__ import annotations

import contextlib
import copy
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch
import torch.nn as nn

from sweep.errors import NotApplicable, one_line
from sweep.limits import LimitExceeded
from sweep.provenance import trim_heap
from sweep.pruners.timm_blocks import block_name


# ---- refusals ----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Refusal:
    """A timm block structural pruning cannot handle yet, found by `match`, and why."""

    block: str
    why: str
    match: Callable[[nn.Module], bool]


MAXXVIT_BLOCKS = (
    "PartitionAttentionCl",
    "PartitionAttention2d",
    "ParallelPartitionAttention",
    "TransformerBlock2d",
)


def _timm_class(module_name: str, *classes: str) -> Callable[[nn.Module], bool]:
    return lambda m: (
        type(m).__module__ == f"timm.models.{module_name}" and type(m).__name__ in classes
    )


# Measured by benchmarks/timm_coverage.py (Torch-Pruning 1.6, timm 1.0): blocks where even trying costs
# too much to leave to the preflight.
REFUSALS: list[Refusal] = [
    Refusal(
        "MaxViT / CoAtNet attention",
        "tracing it, Torch-Pruning's dependency graph grows without bound (maxvit_nano_rw_256: past 8 GiB "
        "in 80-100 s; coatnet_nano_rw_224: killed for memory at 10.6 GB, inside one native call)",
        _timm_class("maxxvit", *MAXXVIT_BLOCKS),
    ),
    Refusal(
        "EfficientViT (MSRA) cascaded group attention",
        "Torch-Pruning's pruning of efficientvit_m0 grew to 5.9 GB in 8 minutes without finishing",
        _timm_class("efficientvit_msra", "CascadedGroupAttention"),
    ),
    Refusal(
        "EfficientFormerV2 attention",
        "Torch-Pruning's pruning of efficientformerv2_s0 ran for more than 6 minutes and grew past 11 GB",
        _timm_class("efficientformer_v2", "Attention2d", "Attention2dDownsample"),
    ),
    Refusal(
        "ReXNet partial residual with drop path",
        "its shortcut is added to a slice of the output channels (torch.cat of x[:, :C] + shortcut and "
        "x[:, C:]), and with drop path on (one draw over both parts) the block is not rewritten; "
        "Torch-Pruning's search for dependency groups of rexnet_100 through the slice ran for more "
        "than 30 minutes without finishing",
        lambda m: (
            _timm_class("rexnet", "LinearBottleneck")(m)
            and getattr(m, "use_shortcut", False)
            and getattr(m, "drop_path", None) is not None  # without it, rewritten (see rewrite)
        ),
    ),
]


def refusal(model: nn.Module) -> str | None:
    """One line naming the first block of `model` that structural pruning cannot handle, and why."""
    for m in model.modules():
        for r in REFUSALS:
            if r.match(m):
                return f"timm block {block_name(m)} ({r.block}): {r.why}"
    return None


# ---- preflight: prune a copy, run it, name the block where it fails -----------------------------------------
def _timm_block_of(model: nn.Module, module: object) -> str | None:
    """`timm class (path in the model)` of the innermost timm.models block holding `module`."""
    names = {id(m): n for n, m in model.named_modules()}
    path = names.get(id(module))
    if path is None:
        return None
    parts = path.split(".") if path else []
    for i in range(len(parts), -1, -1):
        holder = model.get_submodule(".".join(parts[:i]))
        if type(holder).__module__.startswith("timm.models."):
            return f"{block_name(holder)} at '{'.'.join(parts[:i]) or '(model)'}'"
    return f"{block_name(module)} at '{path}'"


def _module_in_traceback(e: BaseException) -> object | None:
    """The layer Torch-Pruning was pruning when it raised: a `layer` or `dep` in its frames."""
    found = None
    for frame, _ in traceback.walk_tb(e.__traceback__):
        if "torch_pruning" not in frame.f_code.co_filename:
            continue
        local = frame.f_locals
        if isinstance(local.get("layer"), nn.Module):
            found = local["layer"]
        dep = local.get("dep")
        target = getattr(getattr(dep, "target", None), "module", None)
        if isinstance(target, nn.Module):
            found = target
    return found


@contextlib.contextmanager
def _forward_stack(model: nn.Module) -> Iterator[list[nn.Module]]:
    """The modules whose forward is running, innermost last (what was running when a forward raised)."""
    stack: list[nn.Module] = []
    entered = []

    def pre(m, args):
        stack.append(m)

    def post(m, args, out):
        if stack and stack[-1] is m:
            stack.pop()

    for m in model.modules():
        entered.append(m.register_forward_pre_hook(pre))
        entered.append(m.register_forward_hook(post))
    try:
        yield stack
    finally:
        for h in entered:
            h.remove()


def check_prunable(
    prune: Callable[[nn.Module], nn.Module],
    model: nn.Module,
    example: torch.Tensor,
    model_name: str,
) -> None:
    """Prune a copy of `model` with `prune` and run it on `example`: NotApplicable, naming the timm block
    and the error, if either fails or the output changes shape. Costs one pruning of the model."""
    was_training = model.training
    model.eval()  # a forward in train mode would move BatchNorm's running statistics
    trial = copy.deepcopy(model)
    where, stage = None, "running the dense model"
    try:
        with torch.no_grad():
            want = model(example).shape
        stage = "pruning"
        pruned = prune(trial)
        stage = "running the pruned model"
        with _forward_stack(pruned) as stack, torch.no_grad():
            try:
                got = pruned(example).shape
            except Exception:
                where = stack[-1] if stack else None
                raise
        if got != want:
            raise RuntimeError(
                f"the pruned model outputs {tuple(got)}, the dense one {tuple(want)}"
            )
    except (NotApplicable, LimitExceeded):  # a job limit is the job's to report, not a refusal
        raise
    except Exception as e:  # noqa: BLE001 - any failure of the library becomes a named refusal
        module = where if where is not None else _module_in_traceback(e)
        block = _timm_block_of(trial, module) if module is not None else None
        raise NotApplicable(
            f"{model_name} cannot be pruned structurally: {stage} failed"
            f"{f' in timm block {block}' if block else ''} ({one_line(e)[:200]})"
        ) from None
    finally:
        model.train(was_training)


# ---- layers kept dense: what is left when some layers break the library --------------------------------------
@dataclass
class Session:
    """A Torch-Pruning pruner ready to step, and `sync()`, which brings timm's fields in step after."""

    pruner: object
    sync: Callable[[], None]


def layer_pattern(path: str) -> str:
    """`blocks.3.attn.qkv` -> `blocks.*.attn.qkv`: the same layer in every repeat of its block."""
    return ".".join("*" if p.isdigit() else p for p in path.split("."))


def _matches(pattern: str, path: str) -> bool:
    a, b = pattern.split("."), path.split(".")
    return len(a) == len(b) and all(p == q or (p == "*" and q.isdigit()) for p, q in zip(a, b))


def _named(model: nn.Module) -> Iterator[tuple[str, nn.Module | nn.Parameter]]:
    yield from ((n, m) for n, m in model.named_modules() if n)
    yield from model.named_parameters()


def layers_matching(model: nn.Module, patterns: tuple[str, ...]) -> list:
    """The layers (and parameters) of `model` whose paths match one of `patterns`."""
    if not patterns:
        return []
    return [m for n, m in _named(model) if any(_matches(p, n) for p in patterns)]


def _failing_layer(e: BaseException, names: dict[int, str], graph=None) -> str | None:
    """Path of the layer to leave whole for the error `e` raised by Torch-Pruning: the first layer whose
    output channels the group it was ranking or pruning removes (a `group` in its frames), or the layer
    it was building a group for (an `m`); `names`: id of each layer -> its path."""
    found = None
    for frame, _ in traceback.walk_tb(e.__traceback__):
        if "torch_pruning" not in frame.f_code.co_filename:
            continue
        local = frame.f_locals
        group, layer = local.get("group"), local.get("m")
        if hasattr(group, "items") and graph is not None:
            found = _group_layer(names, group, graph) or found
        elif isinstance(layer, nn.Module) and id(layer) in names:
            found = names[id(layer)]
    return found


def _group_layer(names: dict[int, str], group, graph) -> str | None:
    """Path of the first layer whose output channels `group` removes: leaving that layer whole makes
    Torch-Pruning skip the group (and the same group in every repeat of the block)."""
    for dep, _ in group:
        layer = dep.target.module
        if graph.is_out_channel_pruning_fn(dep.handler) and id(layer) in names:
            return names[id(layer)]
    return None


def find_unprunable(
    session: Callable[[nn.Module, tuple[str, ...]], contextlib.AbstractContextManager[Session]],
    model: nn.Module,
    example: torch.Tensor,
    rounds: int = 8,
) -> tuple[str, ...]:
    """Layer patterns to leave whole so that the rest of `model` can be pruned; () if none are found.

    A copy is pruned one dependency group at a time and run after each: the group being pruned (or
    ranked) when the library raises, or after which the copy no longer runs, is left whole, with the
    same group in every repeat of its block, and the copy pruned again from the start. Costs up to
    `rounds` prunings of the model and one forward pass per group."""
    was_training = model.training
    model.eval()
    kept: list[str] = []
    try:
        with torch.no_grad():
            want = model(example).shape
        for _ in range(rounds):
            done, path = _probe_round(session, model, kept=tuple(kept), example=example, want=want)
            trim_heap()  # that round's copy and graph (GBs on some models), before the next
            if done is not None:
                return tuple(kept) if done else ()
            if path is None or layer_pattern(path) in kept:
                return ()
            kept.append(layer_pattern(path))
        return ()
    finally:
        model.train(was_training)


def _probe_round(
    session, model, kept: tuple[str, ...], example, want
) -> tuple[bool | None, str | None]:
    """Prune a copy of `model` group by group, `kept` left whole: (True, None) when it gets through with
    fewer parameters and the output shape `want`, (False, None) when it gets through otherwise (nothing
    to blame, or nothing left to prune), (None, path) with the layer whose group to keep whole next."""
    trial = copy.deepcopy(model)
    names = {id(m): n for n, m in _named(trial)}
    path, graph = None, None
    try:
        with session(trial, kept) as s, torch.no_grad():
            graph = s.pruner.DG
            for group in s.pruner.step(interactive=True):
                path = _group_layer(names, group, graph)
                group.prune()
                s.sync()
                trial(example)
                path = None
            return _params(trial) < _params(model) and trial(example).shape == want, None
    except LimitExceeded:
        raise
    except Exception as e:  # noqa: BLE001 - a group (or the layer it starts at) to leave whole
        return None, path or _failing_layer(e, names, graph)


def _params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
