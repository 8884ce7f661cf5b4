"""The variants an ablation scores: which LoRA sites of a trained adapter stay on. Each variant has a name
(`all`, `drop-layer:3`, `keep-layers:0-4`, `boundary:7`, ...) for people and structured columns for programs
(`layer`, `window_start`, `window_end`): readers use the columns, never the name.

- modules:  all / none / attention LoRA only / MLP LoRA only / each projection dropped / each projection kept alone
- layers:   all / none / each layer dropped / contiguous windows of `window` layers kept
- boundary: LoRA kept in layers <= b for every b (Chen et al. 2025), from -1 (none) to the last adapted layer
- heads:    all / none / MLP LoRA only / for each head of each adapted layer: its attention update kept alone (the rest
            of attention reverted to the base, MLP LoRA on) and omitted alone (Perlman et al.'s keep and omit)
- windows:  all / none / MLP LoRA only / the attention update of each window of layers kept alone and omitted alone
"""

from dataclasses import dataclass, field

from rerank_lora.analysis.lora_switch import LoraSwitch, Site
from rerank_lora.errors import InputError


@dataclass(frozen=True)
class Variant:
    name: str
    on: frozenset[Site] = field(repr=False)  # the sites with LoRA on
    layer: int | None = None  # the layer dropped (drop-layer:L) or the boundary layer (boundary:b)
    window: tuple[int, int] | None = None  # the first and last layer of a window kept or omitted
    head: int | None = None  # the query head kept or omitted (keep-head:L.h, omit-head:L.h)
    mode: str | None = None  # keep | omit: heads and windows of attention kept alone or omitted alone

    def columns(self) -> dict:
        """What the variant is, as table columns (None: not that kind of variant)."""
        start, end = self.window or (None, None)
        return {
            "variant": self.name,
            "layer": self.layer,
            "window_start": start,
            "window_end": end,
            "head": self.head,
            "mode": self.mode,
        }


def ends(switch: LoraSwitch) -> list[Variant]:
    """Every site on (the reference the others are compared with) and none on."""
    return [Variant("all", frozenset(switch.sites)), Variant("none", frozenset())]


def module_variants(switch: LoraSwitch, modules_by_group) -> list[Variant]:
    """`modules_by_group`: the model family's projections by group, {"attn": [...], "mlp": [...]}."""
    everything = frozenset(switch.sites)
    variants = ends(switch)
    for group in ("attn", "mlp"):
        kept = switch.where(projections=modules_by_group[group])
        if kept and kept != everything:
            variants.append(Variant(f"{group}-only", kept))
    if len(switch.projections) > 1:
        for projection in switch.projections:
            variants.append(Variant(f"drop:{projection}", everything - switch.where(projections=[projection])))
        for projection in switch.projections:
            variants.append(Variant(f"keep:{projection}", switch.where(projections=[projection])))
    return variants


def default_window(switch: LoraSwitch) -> int:
    """A sixth of the adapted layers, rounded up."""
    return -(-len(switch.layers) // 6)


def layer_variants(switch: LoraSwitch, window: int | None = None) -> list[Variant]:
    """`window`: the width of the kept windows (None: `default_window`)."""
    layers, everything = switch.layers, frozenset(switch.sites)
    window = default_window(switch) if window is None else window
    if window < 1:
        raise ValueError(f"window={window}: at least one layer")
    variants = ends(switch)
    variants += [Variant(f"drop-layer:{x}", everything - switch.where(layers=[x]), layer=x) for x in layers]
    for start in range(0, len(layers), window):
        kept = layers[start : start + window]
        name = f"keep-layers:{kept[0]}-{kept[-1]}"
        variants.append(Variant(name, switch.where(layers=kept), window=(kept[0], kept[-1])))
    return variants


def boundary_variants(switch: LoraSwitch) -> list[Variant]:
    """LoRA kept in layers <= b, for b from -1 (no LoRA) to the last adapted layer (all of it)."""
    layers = switch.layers
    return [Variant(f"boundary:{b}", switch.where(layers=[x for x in layers if x <= b]), layer=b) for b in [-1, *layers]]


def attention_split(switch: LoraSwitch, attention_projections) -> tuple[frozenset[Site], frozenset[Site]]:
    """(the attention sites, every other site); refused when the adapter has no attention LoRA."""
    attention = switch.where(projections=attention_projections)
    if not attention:
        names = ", ".join(attention_projections)
        raise InputError(f"the adapter has no LoRA on attention ({names}): no head or window to ablate")
    return attention, frozenset(switch.sites) - attention


def attention_ends(switch: LoraSwitch, attention_projections) -> list[Variant]:
    """`ends` and, when the adapter has LoRA outside attention, attention reverted alone (`mlp-only`)."""
    _, rest = attention_split(switch, attention_projections)
    return ends(switch) + ([Variant("mlp-only", rest)] if rest else [])


def head_variants(switch: LoraSwitch, attention_projections, heads: int, layers=None) -> list[Variant]:
    """For each adapted layer L (of `layers`; None: every one) and query head h: `keep-head:L.h` (of attention only
    h's share in L, MLP LoRA on) and `omit-head:L.h` (everything on but h's share in L)."""
    attention, rest = attention_split(switch, attention_projections)
    everything, variants = frozenset(switch.sites), attention_ends(switch, attention_projections)
    adapted = sorted({s.layer for s in attention})
    unknown = sorted(set(layers or []) - set(adapted))
    if unknown:
        raise InputError(f"heads.layers={sorted(layers)}: {unknown} not adapted; accepted: layers of {compact(adapted)}")
    for layer in sorted(set(layers)) if layers else adapted:
        own = frozenset(s for s in attention if s.layer == layer)
        for h in range(heads):
            others = [x for x in range(heads) if x != h]
            kept = rest | {s.with_heads([h]) for s in own}
            omitted = (everything - own) | {s.with_heads(others) for s in own}
            variants.append(Variant(f"keep-head:{layer}.{h}", kept, layer=layer, head=h, mode="keep"))
            variants.append(Variant(f"omit-head:{layer}.{h}", omitted, layer=layer, head=h, mode="omit"))
    return variants


def window_starts(count: int, width: int, stride: int) -> list[int]:
    """Windows of `width` of `count` layers every `stride`, the last one ending at the last layer."""
    last = max(count - width, 0)
    starts = list(range(0, last + 1, stride))
    return starts if starts[-1] == last else [*starts, last]


def attention_window_variants(switch: LoraSwitch, attention_projections, width: int | None = None, stride: int | None = None):
    """For each window of `width` adapted layers (None: `default_window`) every `stride` layers (None: `width`):
    `keep-attn:a-b` (the attention update only in layers a..b, MLP LoRA on) and `omit-attn:a-b` (all but it)."""
    attention, rest = attention_split(switch, attention_projections)
    everything, variants = frozenset(switch.sites), attention_ends(switch, attention_projections)
    layers = sorted({s.layer for s in attention})
    width = default_window(switch) if width is None else width
    for start in window_starts(len(layers), width, stride or width):
        window = layers[start : start + width]
        inside = frozenset(s for s in attention if s.layer in window)
        span = (window[0], window[-1])
        variants.append(Variant(f"keep-attn:{span[0]}-{span[1]}", rest | inside, window=span, mode="keep"))
        variants.append(Variant(f"omit-attn:{span[0]}-{span[1]}", everything - inside, window=span, mode="omit"))
    return variants


def compact(numbers) -> str:
    """[0,1,2,5,7,8] -> '0-2,5,7-8'."""
    runs: list[list[int]] = []
    for n in sorted(numbers):
        if runs and n == runs[-1][-1] + 1:
            runs[-1].append(n)
        else:
            runs.append([n])
    return ",".join(f"{run[0]}-{run[-1]}" if len(run) > 1 else str(run[0]) for run in runs)
