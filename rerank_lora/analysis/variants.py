"""The variants an ablation scores: which LoRA sites of a trained adapter stay on. Each variant has a name
(`all`, `drop-layer:3`, `keep-layers:0-4`, `boundary:7`, ...) for people and structured columns for programs
(`layer`, `window_start`, `window_end`): readers use the columns, never the name.

- modules:  all / none / attention LoRA only / MLP LoRA only / each projection dropped / each projection kept alone
- layers:   all / none / each layer dropped / contiguous windows of `window` layers kept
- boundary: LoRA kept in layers <= b for every b (Chen et al. 2025), from -1 (none) to the last adapted layer
"""

from dataclasses import dataclass, field

from rerank_lora.analysis.lora_switch import LoraSwitch, Site


@dataclass(frozen=True)
class Variant:
    name: str
    on: frozenset[Site] = field(repr=False)  # the sites with LoRA on
    layer: int | None = None  # the layer dropped (drop-layer:L) or the boundary layer (boundary:b)
    window: tuple[int, int] | None = None  # the first and last layer of a kept window (keep-layers:a-b)

    def columns(self) -> dict:
        """What the variant is, as table columns (None: not that kind of variant)."""
        start, end = self.window or (None, None)
        return {"variant": self.name, "layer": self.layer, "window_start": start, "window_end": end}


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


def compact(numbers) -> str:
    """[0,1,2,5,7,8] -> '0-2,5,7-8'."""
    runs: list[list[int]] = []
    for n in sorted(numbers):
        if runs and n == runs[-1][-1] + 1:
            runs[-1].append(n)
        else:
            runs.append([n])
    return ",".join(f"{run[0]}-{run[-1]}" if len(run) > 1 else str(run[0]) for run in runs)
