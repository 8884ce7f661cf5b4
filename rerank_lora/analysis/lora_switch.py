"""Switch the LoRA update on and off in chosen modules of a loaded adapter, in place, without reloading.

Each LoRA module (a *site*: one projection in one layer) is switched with peft's own per-module
`enable_adapters`: a switched-off module computes exactly its frozen base projection. For speed, `merged`
folds the switched-on updates into the base weights while scoring and afterwards puts the original weights
back bit for bit (a copy, not a subtraction), so a sweep of many variants never drifts. A site may also stand for
only some attention heads' share of its module's update (`Site.heads`, `head_slices.py`).
"""

import re
from collections.abc import Iterable
from contextlib import ExitStack, contextmanager, nullcontext
from dataclasses import dataclass, replace

from peft.tuners.lora import LoraLayer

from rerank_lora.analysis.head_slices import HeadLayout, masked
from rerank_lora.evaluation.evaluator import score

LAYER_INDEX = re.compile(r"\.(?:layers|h|blocks)\.(\d+)\.")


@dataclass(frozen=True, order=True)
class Site:
    layer: int
    projection: str
    name: str  # the module's full name in the peft model
    heads: tuple[int, ...] | None = None  # only these query heads' share of the update (None: all of it)

    @property
    def module_site(self) -> "Site":
        """The whole module's site."""
        return replace(self, heads=None)

    def with_heads(self, heads) -> "Site":
        return replace(self, heads=tuple(sorted(heads)))


class LoraSwitch:
    def __init__(self, backbone):
        self.modules: dict[Site, LoraLayer] = {}
        for name, module in backbone.named_modules():
            if isinstance(module, LoraLayer) and len(module.lora_A) > 0:
                found = LAYER_INDEX.search(f"{name}.")
                self.modules[Site(int(found.group(1)) if found else -1, name.rsplit(".", 1)[-1], name)] = module
        if not self.modules:
            raise ValueError("the model has no LoRA modules to switch")
        self.sites = sorted(self.modules)
        self.lora_params = [p for m in self.modules.values() for n, p in m.named_parameters() if "lora_" in n]
        self.backbone = backbone

    @property
    def head_layout(self) -> HeadLayout:
        return HeadLayout.of(self.backbone)

    @property
    def layers(self) -> list[int]:
        return sorted({s.layer for s in self.sites})

    @property
    def projections(self) -> list[str]:
        return list(dict.fromkeys(s.projection for s in self.modules))  # in the model's own order

    def where(self, layers: Iterable[int] | None = None, projections: Iterable[str] | None = None) -> frozenset[Site]:
        """The sites in `layers` (all when None) and of `projections` (all when None)."""
        layers = None if layers is None else set(layers)
        projections = None if projections is None else set(projections)
        return frozenset(
            s
            for s in self.sites
            if (layers is None or s.layer in layers) and (projections is None or s.projection in projections)
        )

    @contextmanager
    def only(self, on: Iterable[Site]):
        """LoRA on in the sites `on` (a site with `heads`: only those heads' share), off everywhere else; every
        module's state and LoRA factors are restored on exit."""
        on = set(on)
        unknown = {s.module_site for s in on} - set(self.modules)
        if unknown:
            raise ValueError(f"not LoRA sites of this model: {sorted(unknown)[:3]}")
        whole = {s.module_site for s in on}
        if len(whole) < len(on):
            raise ValueError("a LoRA module is named twice (whole and by heads, or by two sets of heads)")
        was_off = {site: module.disable_adapters for site, module in self.modules.items()}
        grads = [p.requires_grad for p in self.lora_params]
        try:
            with ExitStack() as masks:
                for site in (s for s in on if s.heads is not None):
                    module = self.modules[site.module_site]
                    masks.enter_context(masked(module, site.projection, self.head_layout, site.heads))
                for site, module in self.modules.items():
                    module.enable_adapters(site in whole)
                yield
        finally:
            for site, module in self.modules.items():
                module.enable_adapters(not was_off[site])
            for param, grad in zip(self.lora_params, grads):
                param.requires_grad_(grad)

    @contextmanager
    def merged(self):
        """The switched-on updates folded into their base weights; the original weights copied back on exit."""
        saved = []
        try:
            for module in self.modules.values():
                if module.disable_adapters or module.merged:
                    continue
                weight = module.get_base_layer().weight
                saved.append((module, weight.data.clone()))
                module.merge()
            yield
        finally:
            for module, original in saved:
                module.get_base_layer().weight.data.copy_(original)
                module.merged_adapters.clear()

    def score(self, reranker, batches, on: Iterable[Site], merge: bool = True, desc: str = "scoring"):
        """The run {qid: {pid: score}} of `batches` with LoRA on only in the sites `on`."""
        with self.only(on), self.merged() if merge else nullcontext():
            return score(reranker, batches, desc=desc, merge=False)
