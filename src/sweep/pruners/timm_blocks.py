"""What Torch-Pruning must be told about timm's blocks, in one place, one entry per block.

Torch-Pruning follows channels through the autograd graph and takes every op it does not know for an
element-wise one: a transpose, a reshape to 4x the channels, a linear layer applied along the token
axis. timm's blocks that do such things need one of
  * a customised pruner for the block (Torch-Pruning's `customized_pruners`): Swin's patch merging,
    whose linear layer reads 2x2 neighbouring tokens' channels side by side;
  * to be taken out of the channel graph: the token-mixing layers of MLP-Mixer, ResMLP and gMLP, whose
    width is the number of tokens (they act on every channel alike, so channels pass through them);
  * parameters never pruned: tables indexed by relative position, one column per head;
  * a rewrite before pruning into blocks that compute the same from the same weights and that the graph
    can follow: GluMlp (one layer split in halves) as SwiGLU, ReXNet's partial residual with its last
    layer in two;
  * bookkeeping after pruning, for blocks that keep sizes as fields and reshape by them: attention
    (`num_heads`, `head_dim`, `attn_dim` / `attention_dim`), MetaFormer's Scale (`shape`);
  * for what none of this covers, layers kept whole: `find_unprunable` prunes a copy group by group and
    names the layers whose groups break it (in every repeat of their block), and the rest is pruned;
  * or, where nothing is left to prune or trying costs too much, a refusal before pruning that names
    the block and why: `preflight` prunes a copy of the model and runs it, and a failure names the timm
    block it happened in.
`rewrite(model)` and `configure(model)` prepare a pruning, `after_pruning(model)` updates the blocks'
fields, `find_unprunable(...)` finds what to keep whole, and `preflight(...)` raises NotApplicable with
one line where a model cannot be pruned.
"""

from __future__ import annotations

import contextlib
import copy
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import torch
import torch.nn as nn
from timm.models import rexnet as _rexnet

from sweep.errors import NotApplicable, one_line
from sweep.limits import LimitExceeded
from sweep.provenance import trim_heap


def _tp():
    import torch_pruning as tp

    return tp


def _block(module: nn.Module) -> str:
    return f"{type(module).__module__.removeprefix('timm.models.')}.{type(module).__name__}"


# ---- Swin patch merging --------------------------------------------------------------------------------
def _is_patch_merging(m: nn.Module) -> bool:
    """timm's Swin (v1, v2) PatchMerging: 2x2 tokens' channels concatenated, then a linear reduction."""
    return (
        type(m).__name__ == "PatchMerging"
        and type(m).__module__.startswith("timm.models.swin_transformer")
        and isinstance(getattr(m, "reduction", None), nn.Linear)
        and isinstance(getattr(m, "norm", None), nn.LayerNorm)
    )


def _patch_merging_pruner():
    tp = _tp()
    fn = tp.pruner.function

    class PatchMergingPruner(tp.pruner.BasePruningFunc):
        """Input channel c of a PatchMerging is read at c, c + C, c + 2C and c + 3C of the reduction's
        input (and of the norm before it, in Swin v1); its outputs are the reduction's (and the norm's
        after it, in Swin v2)."""

        TARGET_MODULES = None

        @staticmethod
        def _norm_first(layer) -> bool:
            return layer.norm.normalized_shape[0] == layer.reduction.in_features

        def prune_in_channels(self, layer, idxs):
            dim = layer.reduction.in_features // 4
            four = [i + k * dim for k in range(4) for i in idxs]
            if self._norm_first(layer):
                fn.prune_layernorm_out_channels(layer.norm, four)
            fn.prune_linear_in_channels(layer.reduction, four)
            layer.dim = layer.reduction.in_features // 4
            return layer

        def prune_out_channels(self, layer, idxs):
            norm_after = not self._norm_first(layer)
            fn.prune_linear_out_channels(layer.reduction, idxs)
            if norm_after:
                fn.prune_layernorm_out_channels(layer.norm, idxs)
            layer.out_dim = layer.reduction.out_features
            return layer

        def get_in_channels(self, layer):
            return layer.reduction.in_features // 4

        def get_out_channels(self, layer):
            return layer.reduction.out_features

    return PatchMergingPruner()


# ---- token-mixing layers (MLP-Mixer, ResMLP, gMLP) ----------------------------------------------------
def _token_mixers(model: nn.Module) -> list[nn.Module]:
    """Layers applied along the token axis (after a transpose): their width is the token count."""
    found = []
    for m in model.modules():
        name = type(m).__name__
        if name == "MixerBlock":
            found.append(m.mlp_tokens)
        elif name == "ResBlock" and isinstance(getattr(m, "linear_tokens", None), nn.Linear):
            found.append(m.linear_tokens)
        elif name == "SpatialGatingUnit" and isinstance(getattr(m, "proj", None), nn.Linear):
            found.append(m.proj)
    return found


class TokenMixing:
    """Marks a token-mixing layer for the length of one pruning (its class is swapped for a subclass of
    itself, so that Torch-Pruning's by-type customised pruner finds it, and swapped back after)."""


def _token_mixing_pruner():
    tp = _tp()

    class TokenMixingPruner(tp.pruner.BasePruningFunc):
        """Channels pass through unchanged (the layer mixes tokens, the same for every channel): pruning a
        channel removes nothing here, and in and out channels are one and the same."""

        TARGET_MODULES = None

        def prune_out_channels(self, layer, idxs):
            return layer

        prune_in_channels = prune_out_channels  # in channel c is out channel c

        def get_out_channels(self, layer):
            return None

        get_in_channels = get_out_channels

    return TokenMixingPruner()


@contextlib.contextmanager
def _marked(layers: list[nn.Module]) -> Iterator[dict[type, type]]:
    """Swap each layer's class for a TokenMixing subclass of it; {subclass: original} while inside."""
    subclasses: dict[type, type] = {}
    swapped = []
    for layer in layers:
        cls = type(layer)
        sub = next((s for s, c in subclasses.items() if c is cls), None)
        if sub is None:
            sub = type(f"TokenMixing{cls.__name__}", (cls, TokenMixing), {})
            subclasses[sub] = cls
        layer.__class__ = sub
        swapped.append((layer, cls))
    try:
        yield subclasses
    finally:
        for layer, cls in swapped:
            layer.__class__ = cls


# ---- rewritten before pruning: GLU MLPs ------------------------------------------------------------------
def _split_glu(glu: nn.Module) -> nn.Module:
    """timm's GluMlp computes fc1 once and splits it in two halves (value and gate) with `chunk`, which
    the dependency graph cannot follow; SwiGLU, the same function with the halves as two layers, it
    can. The halves' weights are copied, so the output is unchanged."""
    from timm.layers.mlp import SwiGLU

    fc1, half = glu.fc1, glu.fc1.out_features // 2
    gate_half, value_half = (slice(half, None), slice(None, half))
    if not glu.gate_last:
        gate_half, value_half = value_half, gate_half
    out = SwiGLU(
        fc1.in_features,
        half,
        glu.fc2.out_features,
        bias=(fc1.bias is not None, glu.fc2.bias is not None),
    )
    for name, rows in (("fc1_g", gate_half), ("fc1_x", value_half)):
        layer = getattr(out, name)
        layer.weight.data = fc1.weight.data[rows].clone()
        if fc1.bias is not None:
            layer.bias.data = fc1.bias.data[rows].clone()
    out.act, out.drop1, out.norm, out.fc2, out.drop2 = (
        glu.act,
        glu.drop1,
        glu.norm,
        glu.fc2,
        glu.drop2,
    )
    return out.to(fc1.weight.device, fc1.weight.dtype)


# ---- rewritten before pruning: ReXNet's partial residual -------------------------------------------------
class SplitLinearBottleneck(_rexnet.LinearBottleneck):
    """ReXNet's block adds its input to the first `in_channels` of its output only (a slice, then a
    concatenation), and Torch-Pruning's search for groups through that slice does not end. Here the last
    layer is two: `conv_pwl` makes the channels the input is added to, `conv_pwl_rest` the others, so the
    graph sees an add and a concatenation of whole layers. Same weights, same output."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x
        if self.conv_exp is not None:
            x = self.conv_exp(x)
        x = self.conv_dw(x)
        if self.se is not None:
            x = self.se(x)
        x = self.act_dw(x)
        return torch.cat([self.conv_pwl(x) + shortcut, self.conv_pwl_rest(x)], dim=1)


def _splittable(block: nn.Module) -> bool:
    # with drop path (training only), one draw covers both parts in timm's block: not split
    return (
        type(block) is _rexnet.LinearBottleneck and block.use_shortcut and block.drop_path is None
    )


def _split_rexnet(block: nn.Module) -> None:
    fn = _tp().pruner.function
    c, n = block.in_channels, block.conv_pwl.conv.out_channels
    rest = copy.deepcopy(block.conv_pwl)
    for layer, drop in ((rest, range(c)), (block.conv_pwl, range(c, n))):
        fn.prune_conv_out_channels(layer.conv, list(drop))
        fn.prune_batchnorm_out_channels(layer.bn, list(drop))
    block.conv_pwl_rest = rest
    block.__class__ = SplitLinearBottleneck


def rewrite(model: nn.Module) -> None:
    """Blocks replaced, in place, by ones that compute the same and that Torch-Pruning can follow."""
    for block in list(model.modules()):
        if _splittable(block):
            _split_rexnet(block)
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if (
                type(child).__name__ == "GluMlp"
                and type(child).__module__ == "timm.layers.mlp"
                and isinstance(getattr(child, "fc1", None), nn.Linear)
            ):
                setattr(parent, name, _split_glu(child))


# ---- parameters never pruned -------------------------------------------------------------------------
def _shape_bound_params(model: nn.Module) -> list[nn.Parameter]:
    """Relative position tables (one column per head, one row per offset): bound to the window and the
    heads, never to channels."""
    params = []
    for m in model.modules():
        for name in ("relative_position_bias_table", "rel_pos_bias_table"):
            p = getattr(m, name, None)
            if isinstance(p, nn.Parameter):
                params.append(p)
    return params


# ---- bookkeeping after pruning ---------------------------------------------------------------------------
def attention_blocks(model: nn.Module) -> list[nn.Module]:
    """Multi-head attention blocks with a fused qkv projection (timm's Attention and look-alikes:
    ViT, DeiT, Swin's WindowAttention, MetaFormer's Attention)."""
    return [
        m
        for m in model.modules()
        if isinstance(getattr(m, "qkv", None), nn.Linear)
        and isinstance(getattr(m, "num_heads", None), int)
    ]


def sync_attention(attn: nn.Module, num_heads: int) -> None:
    """After head dims are pruned, the block's fields must follow qkv's new width, or its reshapes (to
    num_heads x head_dim, and back to the attention width) break."""
    head_dim = attn.qkv.out_features // 3 // num_heads
    attn.num_heads = num_heads
    attn.head_dim = head_dim
    for name in ("attn_dim", "attention_dim"):
        if hasattr(attn, name):
            setattr(attn, name, num_heads * head_dim)


def _sync_scales(model: nn.Module) -> None:
    """MetaFormer's Scale (PoolFormer, ConvFormer, CAFormer) multiplies by `scale.view(shape)`, with the
    channel count kept in `shape`."""
    for m in model.modules():
        shape, scale = getattr(m, "shape", None), getattr(m, "scale", None)
        if (
            type(m).__name__ == "Scale"
            and isinstance(shape, tuple)
            and isinstance(scale, nn.Parameter)
        ):
            m.shape = (scale.numel(), *shape[1:])


def after_pruning(model: nn.Module, heads: dict[nn.Module, int]) -> None:
    """Fields of timm blocks that must follow their pruned layers; `heads`: attention block -> heads."""
    for attn, num_heads in heads.items():
        sync_attention(attn, num_heads)
    _sync_scales(model)


# ---- refusals ----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Refusal:
    """A timm block structural pruning cannot handle yet, found by `match`, and why."""

    block: str
    why: str
    match: Callable[[nn.Module], bool]


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
        _timm_class(
            "maxxvit",
            "PartitionAttentionCl",
            "PartitionAttention2d",
            "ParallelPartitionAttention",
            "TransformerBlock2d",
        ),
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
                return f"timm block {_block(m)} ({r.block}): {r.why}"
    return None


# ---- what a model needs ------------------------------------------------------------------------------------
@dataclass
class Setup:
    """Arguments for Torch-Pruning's pruner, and what to do around its step."""

    customized_pruners: dict = field(default_factory=dict)
    ignored_params: list[nn.Parameter] = field(default_factory=list)
    token_mixers: list[nn.Module] = field(default_factory=list)

    @contextlib.contextmanager
    def around(self) -> Iterator[None]:
        """Token-mixing layers marked while the graph is built and pruned."""
        with _marked(self.token_mixers) as subclasses:
            if subclasses:
                pruner = _token_mixing_pruner()
                for sub in subclasses:
                    self.customized_pruners[sub] = pruner
            try:
                yield
            finally:
                for sub in subclasses:
                    self.customized_pruners.pop(sub, None)


def configure(model: nn.Module) -> Setup:
    setup = Setup()
    merging = {type(m) for m in model.modules() if _is_patch_merging(m)}
    if merging:
        pruner = _patch_merging_pruner()
        setup.customized_pruners.update({t: pruner for t in merging})
    setup.ignored_params = _shape_bound_params(model)
    setup.token_mixers = _token_mixers(model)
    return setup


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
            return f"{_block(holder)} at '{'.'.join(parts[:i]) or '(model)'}'"
    return f"{_block(module)} at '{path}'"


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


def preflight(
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
            done, path = _probe_round(session, model, tuple(kept), example, want)
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
