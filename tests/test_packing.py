"""Packed training batches (model/packing.py) score and learn as padded ones, on every model family."""

import pytest
import torch

from conftest import TINY, job_of
from rerank_lora.errors import InputError
from rerank_lora.job.builders import build_reranker
from rerank_lora.model.reranker import Reranker


def lora_gradients(reranker) -> dict[str, torch.Tensor]:
    grads = {n: p.grad.clone() for n, p in reranker.named_parameters() if p.requires_grad}
    reranker.zero_grad()
    return grads


@pytest.mark.parametrize("model", ["tiny_llama", "tiny_mistral", "tiny_pythia"])
@pytest.mark.parametrize("chunks", ["null", 2])
def test_a_packed_batch_scores_and_learns_as_the_padded_one(model, chunks):
    torch.manual_seed(0)
    reranker, _ = build_reranker(job_of([*TINY, f"model={model}", "trainer.packed=true", f"trainer.length_chunks={chunks}"]))
    reranker.train()
    with torch.no_grad():  # LoRA's B starts at zero: give the adapter a say in the scores
        for name, p in reranker.named_parameters():
            if "lora_B" in name:
                p.normal_(std=0.1)
    ids, mask = torch.randint(10, 500, (4, 9)), torch.ones(4, 9, dtype=torch.long)
    mask[0, 4:], mask[2, 7:] = 0, 0  # three lengths, the longest not first
    results = []
    for packed in (False, True):
        reranker.packed = packed
        scores = reranker.training_scores(ids, mask)
        (scores * torch.arange(1.0, 5.0)).sum().backward()
        results.append((scores.detach(), lora_gradients(reranker)))
    (padded, padded_grads), (packed, packed_grads) = results
    assert torch.allclose(padded, packed, atol=1e-5)
    assert padded_grads.keys() == packed_grads.keys()
    assert all(torch.allclose(padded_grads[n], packed_grads[n], atol=1e-5) for n in padded_grads)
    assert any(packed_grads[n].abs().sum() > 0 for n in packed_grads if "lora_A" in n)


def test_packing_on_another_attention_is_one_error():
    with pytest.raises(InputError, match="accepted: sdpa"):
        build_reranker(job_of([*TINY, "trainer.packed=true", "model.attn_implementation=eager"]))


def test_a_packed_reranker_refuses_a_backbone_without_packed_attention():
    reranker, _ = build_reranker(job_of([*TINY, "trainer.packed=false"]))
    with pytest.raises(ValueError, match="packing.PACKED"):
        Reranker(reranker.backbone, 4, packed=True)
