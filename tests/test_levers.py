"""The learning levers: a backbone cut to its first K layers scores from layer K exactly; a probe-initialised head
starts where a linear probe of the training groups is (and a resumed job keeps its own head); BM25 negatives come
from the training passages and share the query's words; precision=auto follows the CPU's bf16 instructions."""

import pytest
import torch
from safetensors.torch import load_file

from conftest import TINY, job_of, kill_after_checkpoint, metrics_rows, model_metrics, run_module, specs
from rerank_lora.analysis.probing import final_norm
from rerank_lora.data.bm25 import BM25
from rerank_lora.data.collection import load_collection
from rerank_lora.data.train_sources import CollectionPairs
from rerank_lora.errors import InputError
from rerank_lora.job.builders import build_reranker
from rerank_lora.job_folder import JobFolder
from rerank_lora.model import precision
from rerank_lora.model.backbone import ModelSpec, load_backbone
from rerank_lora.model.reranker import Reranker


def test_a_backbone_cut_to_k_layers_scores_from_layer_k():
    model, _, _ = specs(["model=tiny_llama", "model.config.num_hidden_layers=3"])
    whole, _ = load_backbone(model)
    cut, _ = load_backbone(ModelSpec(**{**model.__dict__, "num_layers": 2}))
    assert len(cut.layers) == 2 and cut.config.num_hidden_layers == 2
    ids, mask = torch.randint(10, 500, (3, 7)), torch.ones(3, 7, dtype=torch.long)
    mask[1, 5:] = 0
    with torch.no_grad():
        layer_2 = whole(input_ids=ids, attention_mask=mask, output_hidden_states=True).hidden_states[2]
        reference = final_norm(whole)(layer_2)[torch.arange(3), mask.sum(1) - 1]
        assert torch.allclose(Reranker(cut, 2).pooled(ids, mask), reference, atol=1e-6)


def test_compiled_layers_score_and_learn_as_the_plain_ones():
    rerankers = []
    for compiled in (False, True):
        torch.manual_seed(0)  # the same LoRA and head initialisation
        rerankers.append(build_reranker(job_of([*TINY, f"trainer.compile={compiled}"]))[0].train())
    plain, compiled = rerankers
    assert compiled.state_dict().keys() == plain.state_dict().keys()  # checkpoints and adapters read the same
    ids, mask = torch.randint(10, 500, (4, 9)), torch.ones(4, 9, dtype=torch.long)
    mask[1, 6:] = 0
    for length in (9, 7):  # a second length: the dynamic graph, no shape baked in
        scores = [r.training_scores(ids[:, :length], mask[:, :length]) for r in rerankers]
        assert torch.allclose(scores[0], scores[1], atol=1e-5)
    scores[0].sum().backward()
    scores[1].sum().backward()
    grads = [{n: p.grad for n, p in r.named_parameters() if p.requires_grad} for r in rerankers]
    assert grads[0].keys() == grads[1].keys() and all(torch.allclose(grads[0][n], grads[1][n], atol=1e-5) for n in grads[0])
    assert any(grads[1][n].abs().sum() > 0 for n in grads[1] if "lora_B" in n)


@pytest.mark.parametrize("value, phrase", [(4, "accepted: 1..3"), (0, "an integer >= 1"), ("x", "an integer >= 1")])
def test_a_bad_num_layers_is_one_error(value, phrase):
    model, _, _ = specs(["model=tiny_llama", "model.config.num_hidden_layers=3"])
    with pytest.raises(InputError, match=phrase):
        load_backbone(ModelSpec(**{**model.__dict__, "num_layers": value}))


def step0_head(job: JobFolder) -> torch.Tensor:
    return load_file(job.checkpoint(0) / "head.safetensors")["weight"]


def test_a_probe_head_ranks_the_training_groups_and_a_resumed_job_keeps_it(tmp_path):
    args = [*TINY, "head.init=probe", "head.probe_groups=32", "model.num_layers=1"]
    kill_after_checkpoint(tmp_path, [*args, "hydra.run.dir=killed"], tmp_path / "killed/checkpoints/step-2/trainer.ckpt")
    resumed = tmp_path / "killed"
    assert not (resumed / "checkpoints/step-4").exists()
    for folder in ("killed", "whole"):
        assert run_module("rerank_lora.run", [*args, f"hydra.run.dir={folder}"], tmp_path).returncode == 0
    probe_head = step0_head(JobFolder(tmp_path / "whole"))
    random_run = tmp_path / "random"
    assert run_module("rerank_lora.run", [*TINY, "model.num_layers=1", "trainer.max_steps=1", "schedule.steps=[]",
                                          f"hydra.run.dir={random_run}"], tmp_path).returncode == 0
    assert not torch.allclose(probe_head, step0_head(JobFolder(random_run)))
    assert torch.equal(probe_head, step0_head(JobFolder(resumed)))
    whole, again = model_metrics(tmp_path / "whole"), model_metrics(resumed)
    assert whole.keys() == again.keys() and len(whole) == 4
    for key, row in whole.items():
        assert again[key]["nDCG@10"] == pytest.approx(row["nDCG@10"], abs=1e-4)
    assert len([r for r in metrics_rows(resumed) if r["ranker"] == "first-stage"]) == 2


def test_bm25_finds_the_passage_sharing_the_rare_word():
    index = BM25({"a": "the cat sat on the mat", "b": "the dog", "c": "an aardvark eats ants", "d": "the the the"})
    assert index.top("where do aardvark live", 2)[0] == "c"
    assert index.top("the dog barks", 1) == ["b"]


def test_bm25_negatives_are_training_passages_never_the_querys_positives():
    _, data, _ = specs(["data.negatives=[bm25]", "data.bm25_negatives_depth=5"])
    collection = load_collection(data)
    pairs = CollectionPairs(collection, data)
    pool = set(pairs.pool)
    for index in range(0, len(pairs), 97):
        example = pairs.example(index)
        negatives, positives = {p for p, _ in example.negatives}, {p for p, _ in example.positives}
        assert 0 < len(negatives) <= 5 and negatives <= pool and not negatives & positives


@pytest.mark.parametrize("flags, bf16_rate, expected", [(set(), 9e12, "32-true"), ({"amx_bf16"}, 9e11, "bf16-mixed"),
                                                        ({"avx512_bf16"}, 1.2e11, "32-true")])
def test_auto_precision_follows_the_cpus_bf16_instructions_and_speed(monkeypatch, flags, bf16_rate, expected):
    features = {"model_name": "x", **{f: f in flags for f in precision.FEATURE_FLAGS}}
    monkeypatch.setattr(precision, "cpu_features", lambda: features)
    monkeypatch.setattr(precision, "matmul_rate", lambda seconds, bursts, dtype: 1e11 if dtype == torch.float32 else bf16_rate)
    assert precision.resolve_precision("auto", "cpu") == expected
    assert precision.resolve_precision("auto", "gpu") == "bf16-mixed"
    assert precision.resolve_precision("32-true", "cpu") == "32-true"


def test_this_cpus_features_are_read():
    features = precision.cpu_features()
    assert features["model_name"] != "unknown" and set(precision.FEATURE_FLAGS) <= set(features)
