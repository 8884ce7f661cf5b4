"""Prefix sharing is exact: every layer-granular ablation variant scores bitwise as on the plain path (the whole
model run per variant), on every family, merged or not, and the ablation tables are equal but for their times."""

import random

import pytest
import torch

from conftest import specs
from rerank_lora.analysis.ablation import Ablation, BoundarySearch
from rerank_lora.analysis.lora_switch import LoraSwitch
from rerank_lora.analysis.prefix_sharing import PrefixSharingScorer
from rerank_lora.analysis.trained_job import TrainedJob
from rerank_lora.analysis.variants import boundary_variants, layer_variants, module_variants
from rerank_lora.data.datamodule import EvalBatch
from rerank_lora.data.pairs import pad
from rerank_lora.job_folder import JobFolder
from rerank_lora.model.backbone import load_backbone
from rerank_lora.model.lora import LoraSpec, add_lora, target_modules
from rerank_lora.model.reranker import Reranker


def random_reranker(model_name: str, layers: int, *overrides: str) -> Reranker:
    """A tiny model of `layers` layers with LoRA on every projection, its B matrices random (non-zero updates)."""
    model, _, _ = specs([f"model={model_name}", f"model.config.num_hidden_layers={layers}", *overrides])
    backbone, _ = load_backbone(model)
    backbone = add_lora(backbone, LoraSpec(rank=4), target_modules("all", model.modules))
    torch.manual_seed(1)
    with torch.no_grad():
        for name, p in backbone.named_parameters():
            if "lora_B" in name:
                p.normal_(std=0.2)
    return Reranker(backbone, group_size=2)


def random_batches(pad_id: int, count: int = 3, size: int = 5) -> list[EvalBatch]:
    rng = random.Random(0)
    batches = []
    for b in range(count):
        ids = [[rng.randrange(10, 1000) for _ in range(rng.randrange(4, 20))] for _ in range(size)]
        qids, pids = [f"q{b}"] * size, [f"p{b}-{i}" for i in range(size)]
        batches.append(EvalBatch(qids, pids, pad(ids, pad_id)))
    return batches


@pytest.mark.parametrize("model_name", ["tiny_llama", "tiny_mistral", "tiny_pythia"])
@pytest.mark.parametrize("merge", [True, False])
def test_every_variant_scores_bitwise_as_the_plain_path(model_name, merge):
    reranker = random_reranker(model_name, layers=5)
    switch, batches = LoraSwitch(reranker.backbone), random_batches(pad_id=0)
    variants = layer_variants(switch, window=2) + boundary_variants(switch) + module_variants(switch, {"attn": [], "mlp": []})
    plain = [switch.score(reranker, batches, v.on, merge) for v in variants]
    scorer = PrefixSharingScorer(switch, reranker, batches, merge)
    starts = [start for _, start in scorer.plan([v.on for v in variants])]
    assert max(starts) == 5 and sum(0 < s < 5 for s in starts) >= 8  # most variants start above layer 0
    assert scorer.runs([v.on for v in variants]) == plain
    assert len({str(run) for run in plain}) > len(variants) // 2  # the variants do score differently


def test_ablation_tables_equal_the_plain_path_but_for_seconds(trained_tiny_job):
    job = TrainedJob(JobFolder(trained_tiny_job).checkpoint(4), ["dev", "test"])
    search = BoundarySearch("dev", "nDCG@10", "test", queries=8)
    tables = {}
    for share in (False, True):
        ablation = Ablation(job, merge=True, share_prefix=share)
        tables[share] = [ablation.layers("dev"), ablation.boundary(search)]
    for (plain_rows, plain_queries), (shared_rows, shared_queries) in zip(tables[False], tables[True]):
        assert plain_queries == shared_queries
        assert [{k: v for k, v in r.items() if k != "seconds"} for r in plain_rows] == [
            {k: v for k, v in r.items() if k != "seconds"} for r in shared_rows
        ]
