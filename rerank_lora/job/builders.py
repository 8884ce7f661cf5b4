"""The one place a job's reranker and data are assembled from its specs: `run`, `rerank`, the analyses, the
benches, the planner's calibration and the tests all call these."""

import torch

from rerank_lora.data.collection import Collection, load_collection
from rerank_lora.data.datamodule import RerankDataModule
from rerank_lora.data.spec import DataSpec
from rerank_lora.job.spec import JobSpec
from rerank_lora.model.backbone import ModelSpec, compile_layers, load_backbone
from rerank_lora.model.lora import add_lora
from rerank_lora.model.packing import use_packing
from rerank_lora.model.read_position import read_position
from rerank_lora.model.reranker import Reranker


def build_reranker(spec: JobSpec) -> tuple[Reranker, object]:
    """The backbone with LoRA on the spec's projections and a fresh score head, computing as `spec.compute` says;
    and its tokenizer."""
    compute = spec.compute
    backbone, tokenizer = load_backbone(spec.model, compute.gradient_checkpointing)
    if compute.packed:
        use_packing(backbone)
    backbone = add_lora(backbone, spec.lora, list(spec.targets))
    if compute.compile:
        compile_layers(backbone)
    read = read_position(spec.data.template, tokenizer)
    reranker = Reranker(backbone, spec.data.group_size, spec.optim, compute.length_chunks, compute.packed, read)
    reranker.precision = compute.precision  # evaluation, and every tool that re-scores the job, compute in it
    return reranker, tokenizer


def load_checkpoint(folder, spec: JobSpec) -> tuple[Reranker, object]:
    """A checkpoint folder's reranker (adapter and head, read where its reranker.json says) on a freshly loaded
    base backbone, in eval mode on the GPU if there is one, computing in `spec.compute.precision`; and the tokenizer."""
    base, tokenizer = load_base(spec.model)
    reranker = Reranker.load(folder, base).eval()
    reranker.precision = spec.compute.precision
    return reranker.to("cuda" if torch.cuda.is_available() else "cpu"), tokenizer


def load_base(model: ModelSpec) -> tuple[torch.nn.Module, object]:
    """The base model as its source gives it (no LoRA, no head), and its tokenizer: what a checkpoint's adapter
    goes on, and what an export saves beside a tiny model's adapter."""
    return load_backbone(model)


def build_data(data: DataSpec, seed: int, tokenizer, collection: Collection | None = None, train: bool = True,
               queries: int | None = None) -> RerankDataModule:
    """A job's data module (its `data` spec and `seed`): the training stream (unless not `train`) and the eval
    splits reranked to their depth, each cut to its first `queries` queries if given. `collection`: already loaded
    (else loaded here)."""
    collection = collection if collection is not None else load_collection(data)
    return RerankDataModule(collection, tokenizer, data, seed, train=train, queries=queries)
