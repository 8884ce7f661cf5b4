"""One cell's plan: its workload (tokens counted on its data), FLOPs, time at the device's rate, and memory,
as one JSON-ready dict. Tokenizers and token samples are shared by the cells with the same model and data."""

from collections.abc import Callable

from rerank_lora.data.spec import DataSpec
from rerank_lora.job.spec import group_spec
from rerank_lora.model.lora import check_layers, target_modules
from rerank_lora.planning.architecture import architecture, lora_parameters, non_embedding_parameters
from rerank_lora.planning.cells import PlannedCell
from rerank_lora.planning.cost import cell_flops, step_passes
from rerank_lora.planning.memory import GB, cell_memory
from rerank_lora.planning.tokens import TokenSample, assumed, find_tokenizer, proxy_spec
from rerank_lora.planning.workload import workload


class Planner:
    """Tokenizers and token samples shared by the cells that have the same model and data. `tokens_per_pair`:
    stated instead of counted (None: counted); `mini_data`: the data=msmarco_mini spec, standing in for data that
    is not on this machine."""

    def __init__(self, tokens_per_pair: float | None, mini_data: Callable[[], DataSpec]):
        self.tokens_per_pair, self.mini_data = tokens_per_pair, mini_data
        self.tokenizers, self.samples, self.sources = {}, {}, {}

    def tokenizer(self, model: dict, cache_dir: str):
        if model["name"] not in self.tokenizers:
            self.tokenizers[model["name"]] = find_tokenizer(model, cache_dir)
        return self.tokenizers[model["name"]]

    def sample(self, cell: PlannedCell, spec: DataSpec) -> TokenSample | None:
        """The job's own data where it is local; else the shipped mini set standing in (None: tokens stated)."""
        local = spec.loader == "files"
        if not local and self.tokens_per_pair:
            return None
        model, seed = cell.config["model"], cell.config["seed"]
        tokenizer, where, own = self.tokenizer(model, cell.config["cache_dir"])
        spec = spec if local else proxy_spec(spec, self.mini_data())
        key = (where, repr(spec), seed)
        if key not in self.samples:
            self.samples[key] = TokenSample(spec, tokenizer, seed)
        name = f"data={cell.config['data']['name']}"
        data = name if local else f"the shipped msmarco-mini set standing in for {name}"
        words = "its own tokenizer" if own else "SmolLM2's tokenizer (its own is not on this machine)"
        self.sources.setdefault(f"{words} on {data}", {})[model["name"]] = None
        return self.samples[key]

    def token_source(self) -> str:
        if self.tokens_per_pair:
            return f"tokens_per_pair={self.tokens_per_pair} (stated; unpadded)"
        counted = "; ".join(f"{', '.join(models)}: {how}" for how, models in self.sources.items())
        return (f"counted ({counted}), batched as the job batches them: each batch padded to its longest pair, a "
                "packed training batch (trainer.packed) computing only its real tokens outside attention")

    def cell(self, index: int, cell: PlannedCell, rate, capacity_gb: float) -> dict:
        cfg = cell.config
        model, modules, rank = cfg["model"], cfg["targets"]["modules"], cfg["lora"]["rank"]
        spec = group_spec(DataSpec, cfg["data"], "data")
        sample = self.sample(cell, spec)
        vocab = len(self.tokenizer(model, cfg["cache_dir"])[0]) if sample and model.get("source") == "tiny" else None
        arch = architecture(model, vocab)
        per_pair = assumed(self.tokens_per_pair) if self.tokens_per_pair else None
        work = workload(cfg["trainer"], cfg["schedule"], spec, sample, per_pair)
        checkpointing = bool(cfg["trainer"].get("gradient_checkpointing", False))
        flops = cell_flops(arch, work, checkpointing)
        targets = target_modules(modules, model["modules"])
        lora = lora_parameters(arch, rank, targets, check_layers(cfg["lora"]["layers"], arch.layers))
        memory = cell_memory(arch, cfg, targets, lora + arch.hidden + 1)
        return {
            "cell": index, "overrides": list(cell.overrides), "model": model["name"], "rank": rank,
            "targets": "+".join(targets) if not isinstance(modules, str) else modules,
            "steps": work.steps, "accumulate_grad_batches": work.accumulate, "world_size": work.world_size,
            "training_groups": work.groups, "training_pairs": work.pairs, "training_tokens": work.train.real,
            "training_tokens_padded": work.train.padded, "checkpoints": work.checkpoints, "eval_splits": work.splits,
            "evaluations": work.evaluations, "pairs_scored": work.pairs_scored, "scored_tokens": work.scoring.real,
            "scored_tokens_padded": work.scoring.padded, "non_embedding_parameters": non_embedding_parameters(arch),
            "lora_parameters": lora, "gradient_checkpointing": checkpointing, "step_passes": step_passes(checkpointing),
            "flops": {"train": flops.train, "scoring": flops.scoring, "total": flops.total,
                      "train_matmul": flops.train_matmul, "attention_share": flops.attention_share},
            "seconds": rate.seconds(flops, work.world_size),
            "memory_gb": _memory(memory, checkpointing, capacity_gb),
        }


def _memory(memory, checkpointing: bool, capacity_gb: float) -> dict:
    return {
        "weights": memory.weights / GB, "lora_state": memory.lora_state / GB,
        "activations": memory.activations / GB, "activations_checkpointed": memory.activations_checkpointed / GB,
        "total_with_checkpointing": memory.total(True) / GB, "total_without_checkpointing": memory.total(False) / GB,
        "capacity": capacity_gb, "fits": memory.total(checkpointing) / GB <= capacity_gb,
    }
