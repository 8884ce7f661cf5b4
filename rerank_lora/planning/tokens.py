"""Tokens per training and scored pair, counted on data rather than assumed: the job's own collection where it
is local (data.loader=files, e.g. the shipped MS MARCO mini set), tokenised with the model's tokenizer (else
SmolLM2's) and batched exactly as the job batches it; for data that is not local (data=msmarco) the shipped
mini set, which holds MS MARCO passages, stands in with the cell's lengths and batch shapes; or a stated
`tokens_per_pair`. Padded tokens are what is computed: every batch is padded to its longest pair, except that a
packed training batch (trainer.packed) computes only its real tokens outside attention."""

import dataclasses
from dataclasses import dataclass
from pathlib import Path

from rerank_lora.data.spec import DataSpec
from rerank_lora.errors import InputError
from rerank_lora.job.builders import build_data

SAMPLE_GROUPS = 4096  # training groups counted exactly; a longer run scales their mean
SMOLLM2 = "SmolLM2-135M-Instruct.Q4_1"  # the converted folder under cache_dir: the fallback tokenizer
PROXY_DEPTH = 100  # the shipped set's BM25 candidates per query


@dataclass(frozen=True)
class Tokens:
    """Token counts of some pairs: real tokens, padded tokens (what the projections and MLPs compute), and the sum
    over sequences of the padded length squared (attention's quadratic term)."""

    pairs: float = 0.0
    real: float = 0.0
    padded: float = 0.0
    square: float = 0.0

    def __add__(self, other: "Tokens") -> "Tokens":
        return Tokens(*(a + b for a, b in zip(dataclasses.astuple(self), dataclasses.astuple(other))))

    def __mul__(self, factor: float) -> "Tokens":
        return Tokens(*(value * factor for value in dataclasses.astuple(self)))

    __rmul__ = __mul__

    def scaled(self, pairs: float) -> "Tokens":
        """The same means per pair, over `pairs` pairs."""
        factor = pairs / self.pairs if self.pairs else 0.0
        return Tokens(pairs, self.real * factor, self.padded * factor, self.square * factor)


def batch(lengths: list[int], packed: bool = False) -> Tokens:
    """One batch padded to its longest sequence; packed (model/packing.py), only attention sees the padding."""
    width = max(lengths)
    computed = sum(lengths) if packed else len(lengths) * width
    return Tokens(len(lengths), sum(lengths), computed, len(lengths) * width**2)


def assumed(tokens_per_pair: float) -> Tokens:
    """One pair of `tokens_per_pair` tokens, unpadded."""
    return Tokens(1, tokens_per_pair, tokens_per_pair, tokens_per_pair**2)


class TokenSample:
    """A data config tokenised: the training stream's groups and the eval splits' batches as the job builds
    them (job/builders.py), on the job's data or on the shipped mini set standing in for it."""

    def __init__(self, spec: DataSpec, tokenizer, seed: int):
        self.spec = spec
        self.data = build_data(spec, seed, tokenizer)
        self.splits: dict[str, Tokens] = {}

    def training(self, groups: int, packed: bool) -> Tokens:
        """The first `groups` groups of the training stream in micro-batches of queries_per_batch groups, each
        packed or padded (counted up to SAMPLE_GROUPS, then scaled)."""
        per_batch = self.spec.queries_per_batch
        counted = min(groups, max(SAMPLE_GROUPS, per_batch)) // per_batch * per_batch
        total = Tokens()
        for start in range(0, counted, per_batch):
            pairs = [p for k in range(start, start + per_batch) for p in self.data.train_set.group(k)]
            total += batch([len(p) for p in pairs], packed)
        return total.scaled(groups * self.spec.group_size)

    def scoring(self, split: str) -> Tokens:
        """All pairs of one eval split at the reranking depth, in its eval batches."""
        if split not in self.splits:
            total = Tokens()
            for eval_batch in self.data.eval_batches(split):
                mask = eval_batch.inputs["attention_mask"]
                total += batch(mask.sum(dim=1).tolist()) if self.spec.sort_by_length else _fixed(mask)
            self.splits[split] = total
        return self.splits[split]

    def scoring_per_pair(self) -> Tokens:
        """One scored pair, on average over the eval splits."""
        total = sum((self.scoring(split) for split in self.spec.eval_splits), Tokens())
        return total.scaled(1)


def _fixed(mask) -> Tokens:
    """A batch padded to data.max_length (sort_by_length=false)."""
    rows, width = mask.shape
    return Tokens(rows, float(mask.sum()), rows * width, rows * width**2)


def proxy_spec(spec: DataSpec, mini: DataSpec) -> DataSpec:
    """The shipped mini set (`mini`: the data=msmarco_mini spec) with the cell's group, batch and length settings."""
    keep = ("group_size", "queries_per_batch", "max_length", "eval_batch_size", "sort_by_length")
    return dataclasses.replace(
        mini, **{key: getattr(spec, key) for key in keep}, eval_depth=min(spec.eval_depth, PROXY_DEPTH),
        eval_splits=["dev", "test"],
    )


def find_tokenizer(model: dict, cache_dir: str) -> tuple[object, str, bool]:
    """The model's tokenizer where it is on this machine (its converted GGUF folder, model.path, or the Hugging
    Face cache), else SmolLM2's; never downloads. Returns it, where it came from, and whether it is the model's own."""
    from transformers import AutoTokenizer

    fallback = Path(str(cache_dir)).expanduser() / SMOLLM2
    for where, own in ((_local_tokenizer_folder(model), True), (fallback, False)):
        if where is None:
            continue
        try:
            tokenizer = AutoTokenizer.from_pretrained(str(where), local_files_only=True)
        except (OSError, ValueError):
            continue
        if tokenizer.pad_token_id is None:
            tokenizer.pad_token = tokenizer.eos_token
        return tokenizer, str(where), own
    raise InputError(f"no tokenizer for {model['name']} on this machine (nor SmolLM2's in {fallback}); give tokens_per_pair=N")


def _local_tokenizer_folder(model: dict):
    if model.get("source") in ("gguf", "tiny"):
        folder = Path(str(model.get("cache_dir"))).expanduser() / Path(model["gguf"]["file"]).stem
        return folder if (folder / "config.json").is_file() else None
    return model.get("path") or model.get("hub_id")
