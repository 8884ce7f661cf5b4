"""Scoring ablation variants without recomputing what they share. A variant whose LoRA sites agree with a
reference (every site on, or none) in every layer below layer f computes exactly the reference's hidden states up
to f. So each reference is run one layer at a time over every batch, keeping only the current layer's input, and a
variant runs just its own layers f.. from the reference's state there: dropping layer x or cutting at boundary b
costs the layers above x or b, not the whole model. Each layer sees the same inputs and the same (merged) weights as
on the plain path, so the scores are bitwise the plain path's (tests/test_ablate.py checks the tables are equal)."""

import time
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext

import torch
from torch import nn
from tqdm import tqdm

from rerank_lora.analysis.lora_switch import LoraSwitch, Site
from rerank_lora.evaluation.evaluator import score
from rerank_lora.model.lora import base_model

Run = dict[str, dict[str, float]]


class LayerWindow:
    """Makes the backbone run only decoder layers [start, stop): the input of layer `start` is taken, one forward
    pass after another, from `states` (unless start is 0), and each pass's output of layer stop - 1 is appended to
    `self.outputs`."""

    def __init__(self, backbone):
        self.model = base_model(backbone)
        self.layers = list(self.model.layers)
        self.states: Iterator[torch.Tensor] = iter(())
        self.outputs: list[torch.Tensor] = []

    @contextmanager
    def running(self, start: int, stop: int, states: list):
        full, self.states, self.outputs = self.model.layers, iter(states), []
        hooks = [self.layers[stop - 1].register_forward_hook(self._keep_output)]
        if start > 0:
            hooks.append(self.layers[start].register_forward_pre_hook(self._inject, with_kwargs=True))
        self.model.layers = nn.ModuleList(self.layers[start:stop])
        try:
            yield self
        finally:
            self.model.layers = full
            for hook in hooks:
                hook.remove()

    def _inject(self, module, args, kwargs):
        state = next(self.states)
        if args:
            return (state, *args[1:]), kwargs
        return args, {**kwargs, "hidden_states": state}

    def _keep_output(self, module, args, output):
        self.outputs.append(output[0] if isinstance(output, tuple) else output)


class PrefixSharingScorer:
    """Runs of `variants` (sets of LoRA sites on) over `batches`, as a list in the same order. The references are
    every site on, none on, and `references` (e.g. attention reverted, the prefix of every kept head)."""

    def __init__(self, switch: LoraSwitch, reranker, batches, merge: bool = True, desc: str = "scoring", references=()):
        self.switch, self.reranker, self.batches, self.merge, self.desc = switch, reranker, batches, merge, desc
        self.window = LayerWindow(reranker.backbone)
        self.num_layers = len(self.window.layers)
        self.references = list(dict.fromkeys([frozenset(switch.sites), frozenset(), *map(frozenset, references)]))

    def first_difference(self, on: frozenset[Site], reference: frozenset[Site]) -> int:
        """The lowest layer whose sites differ between the two (num_layers: none does)."""
        layers = {s.layer for s in on ^ reference}
        return min(layers) if layers else self.num_layers

    def plan(self, variants: list[frozenset[Site]]) -> list[tuple[int, int]]:
        """For each variant, (reference index, the layer its own run starts at)."""
        plans = []
        for on in variants:
            starts = [self.first_difference(on, ref) for ref in self.references]
            best = max(range(len(starts)), key=lambda i: starts[i])
            plans.append((best, starts[best]))
        return plans

    def runs(self, variants: list[frozenset[Site]], timings: list[float] | None = None) -> list[Run]:
        """`timings`, when given, receives each variant's seconds (a reference's own layer-by-layer pass counts
        as that of the variants equal to it)."""
        plans, out = self.plan(variants), [None] * len(variants)
        seconds = [0.0] * len(variants)
        for r, reference in enumerate(self.references):
            mine = [i for i, (ref, _) in enumerate(plans) if ref == r]
            if not mine:
                continue
            equal = [i for i in mine if plans[i][1] == self.num_layers]
            states: list = [None] * len(self.batches)
            advancing = 0.0
            layers = range(min(max(plans[i][1] for i in mine), self.num_layers - 1) + 1)
            for layer in tqdm(layers, desc=f"{self.desc} (reference {r})", unit="layer", leave=False):
                for i in mine:
                    if plans[i][1] == layer:
                        started = time.perf_counter()
                        out[i] = self._score_from(variants[i], layer, states)
                        seconds[i] += time.perf_counter() - started
                started = time.perf_counter()
                run = self._advance(reference, layer, states)  # after the last layer: the reference's own run
                advancing += time.perf_counter() - started
            for i in equal:
                out[i], seconds[i] = run, advancing / len(equal)
        if timings is not None:
            timings[:] = seconds
        return out

    def _sites(self, on: frozenset[Site], layers: range) -> frozenset[Site]:
        return frozenset(s for s in on if s.layer in layers)

    def _advance(self, reference: frozenset[Site], layer: int, states: list) -> Run:
        """Every batch's state through `layer` with the reference's sites (in place), and the scores so far."""
        run = self._forward(self._sites(reference, range(layer, layer + 1)), layer, layer + 1, states)
        states[:] = self.window.outputs
        return run

    def _score_from(self, on: frozenset[Site], layer: int, states: list) -> Run:
        return self._forward(self._sites(on, range(layer, self.num_layers)), layer, self.num_layers, states)

    def _forward(self, on: frozenset[Site], start: int, stop: int, states: list) -> Run:
        """The evaluator's own scoring loop over every batch, with only layers [start, stop) run."""
        merged = self.switch.merged() if self.merge else nullcontext()
        with self.switch.only(on), merged, self.window.running(start, stop, states):
            return score(self.reranker, self.batches, desc=f"layers {start}-{stop - 1}", merge=False)
