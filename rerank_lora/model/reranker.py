"""The reranker: a LoRA-adapted backbone and a linear head on the last real token (RankLLaMA-style)."""

import json
from dataclasses import dataclass
from pathlib import Path

import lightning as L
import torch
from peft import PeftModel, set_peft_model_state_dict
from safetensors.torch import load_file, save_file
from torch import nn

from rerank_lora import faults
from rerank_lora.disk import writing
from rerank_lora.errors import TrainingDiverged
from rerank_lora.job_folder import ADAPTER_FILE, HEAD_FILE, INFO_FILE
from rerank_lora.model.packing import PACKED, PackedBatch
from rerank_lora.model.read_position import ReadPosition


@dataclass(frozen=True)
class Optim:
    """AdamW with linear warm-up then linear decay to zero over the run (the `optim` config group)."""

    lr: float = 1e-4
    head_lr: float | None = None  # the score head's own rate (None: lr)
    weight_decay: float = 0.0
    warmup_steps: int = 0


class Reranker(L.LightningModule):
    """Scores `query: {q} document: {d}</s>` pairs; trained with softmax cross-entropy over groups
    of one positive (first) and group_size - 1 negatives."""

    def __init__(
        self, backbone: nn.Module, group_size: int, optim: Optim | None = None, length_chunks: int | None = None,
        packed: bool = False, read: ReadPosition | None = None,
    ):
        super().__init__()
        self.backbone = backbone
        # No bias: a softmax over a group is blind to a shift of all its scores, so a bias would learn nothing but
        # rounding noise (which Adam's normalised step blows up); without one the head is a classifier's `score`.
        self.head = nn.Linear(backbone.config.hidden_size, 1, bias=False)
        nn.init.normal_(self.head.weight, std=backbone.config.hidden_size**-0.5)
        self.group_size = group_size
        self.optim = optim or Optim()
        self.length_chunks = length_chunks  # training: score a batch in this many pairs at a time, by length
        self.packed = packed  # training: each batch (or chunk) packed into one row
        self.read = read or ReadPosition()  # which token's state the head scores (model/read_position.py)
        if packed and backbone.config._attn_implementation != PACKED:  # plain SDPA would attend across the pairs
            raise ValueError("packed=True needs a backbone whose attention is packing.PACKED (packing.use_packing)")
        self.strict_loading = False  # resume checkpoints hold only the trained weights
        self.precision = "32-true"  # the job's Lightning precision: scoring outside training computes in it too

    def autocast(self):
        """The autocast a job in `precision` computes its matmuls in (bf16 or fp16 mixed precision, on any device;
        none in 32-true), so every tool that re-scores a job scores as the job did."""
        dtype = {"bf16": torch.bfloat16, "16": torch.float16}.get(self.precision.split("-")[0])
        device = next(self.parameters()).device
        return torch.autocast(device.type, dtype=dtype, enabled=dtype is not None and "mixed" in self.precision)

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        """Keep LoRA and head weights only: the frozen base is reloaded from its source on resume."""
        trained = {name for name, p in self.named_parameters() if p.requires_grad}
        checkpoint["state_dict"] = {k: v for k, v in checkpoint["state_dict"].items() if k in trained}

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.head_scores(self.pooled(input_ids, attention_mask))

    def head_scores(self, states: torch.Tensor) -> torch.Tensor:
        """The head on float32 states, in float32 under any autocast: bf16 rounding of the scores would tie pairs."""
        with torch.autocast(states.device.type, enabled=False):
            return self.head(states.float()).squeeze(-1)

    def pooled(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """The last layer's state at each pair's read token (`read`), in float32."""
        hidden = self.backbone(input_ids=input_ids, attention_mask=attention_mask, use_cache=False).last_hidden_state
        read = self.read.index(input_ids, attention_mask)
        return hidden[torch.arange(hidden.size(0), device=hidden.device), read].float()

    def packed_scores(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """forward's scores, computed with the batch packed into one row (model/packing.py): no padding computed."""
        batch = PackedBatch.of(input_ids, attention_mask)
        hidden = self.backbone(
            input_ids=batch.input_ids, position_ids=batch.position_ids, padded_view=batch.padded_view, use_cache=False
        ).last_hidden_state
        return self.head_scores(hidden[0, self.packed_read(batch, input_ids, attention_mask)])

    def packed_read(self, batch: PackedBatch, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Each pair's read token in the packed row: its last token there, less the tokens after the read one."""
        lengths = attention_mask.sum(dim=1)
        return batch.last - (lengths - 1 - self.read.index(input_ids, attention_mask))

    def by_length(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, size: int, score=None) -> torch.Tensor:
        """The scores of a right-padded batch, computed `size` pairs at a time in order of length, each chunk cut
        to its own longest pair: a training batch mixes short and long passages, and padding is computed too."""
        score = score or self
        lengths = attention_mask.sum(dim=1)
        order = lengths.argsort()
        parts = [score(input_ids[c, : lengths[c].max()], attention_mask[c, : lengths[c].max()]) for c in order.split(size)]
        return torch.cat(parts)[order.argsort()]

    def training_scores(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """The scores of a training batch: packed into one row when `packed`, by length in chunks of `length_chunks`
        pairs when set (each chunk its own row when packed too)."""
        score = self.packed_scores if self.packed else self
        if self.length_chunks is None:
            return score(input_ids, attention_mask)
        return self.by_length(input_ids, attention_mask, self.length_chunks, score)

    def group_loss(self, batch) -> torch.Tensor:
        """Softmax cross-entropy over each group of group_size pairs, its positive first."""
        scores = self.training_scores(batch["input_ids"], batch["attention_mask"]).view(-1, self.group_size)
        target = torch.zeros(scores.size(0), dtype=torch.long, device=scores.device)
        return nn.functional.cross_entropy(scores, target)

    def training_step(self, batch, batch_idx):
        loss = self.group_loss(batch)
        if not torch.isfinite(loss):
            raise TrainingDiverged(f"the training loss is {loss.item()} at step {self.global_step}")
        groups = batch["input_ids"].size(0) // self.group_size
        self.log("train/loss", loss, prog_bar=True, batch_size=groups, sync_dist=True)  # DDP: the mean over ranks
        return loss

    def configure_optimizers(self):
        lora = [p for p in self.backbone.parameters() if p.requires_grad]
        head_lr = self.optim.head_lr or self.optim.lr
        groups = [{"params": lora}, {"params": list(self.head.parameters()), "lr": head_lr}]
        optimizer = torch.optim.AdamW(groups, lr=self.optim.lr, weight_decay=self.optim.weight_decay)
        total = max(self.trainer.max_steps, 1)
        warmup = self.optim.warmup_steps

        def factor(step: int) -> float:  # linear warm-up, then linear decay to zero
            if step < warmup:
                return (step + 1) / (warmup + 1)
            return max(0.0, (total - step) / max(1, total - warmup))

        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    def save(self, folder: Path) -> None:
        """The adapter (peft format) and the head."""
        folder.mkdir(parents=True, exist_ok=True)
        with writing(folder / ADAPTER_FILE, partial=folder / ADAPTER_FILE):  # peft writes under the final name
            self.backbone.save_pretrained(folder)
        faults.point("adapter_saved")
        with writing(folder / HEAD_FILE, partial=folder / HEAD_FILE):
            save_file({k: v.detach().cpu().contiguous() for k, v in self.head.state_dict().items()}, folder / HEAD_FILE)

    @classmethod
    def load(cls, folder: Path, base: nn.Module, group_size: int = 1) -> "Reranker":
        """A reranker from `save`'s folder on a freshly loaded base backbone, reading where its reranker.json says."""
        read = ReadPosition.from_json(json.loads((folder / INFO_FILE).read_text())) if (folder / INFO_FILE).is_file() else None
        reranker = cls(PeftModel.from_pretrained(base, folder), group_size, read=read)
        reranker.load_head(folder)
        return reranker

    def load_checkpoint(self, folder: Path) -> None:
        """`save`'s adapter and head put back into this reranker in place (its backbone already has the adapter)."""
        adapter = load_file(folder / ADAPTER_FILE, device=str(self.head.weight.device))
        result = set_peft_model_state_dict(self.backbone, adapter)
        if result.unexpected_keys:
            raise ValueError(f"{folder} holds adapter weights this model lacks, e.g. {result.unexpected_keys[0]}")
        self.load_head(folder)

    def load_head(self, folder: Path) -> None:
        """The head of a checkpoint folder. Checkpoints written before the head lost its bias hold one: it shifts
        every score by the same amount, so rankings (and every metric) are the same without it."""
        weights = load_file(folder / HEAD_FILE, device=str(self.head.weight.device))
        weights.pop("bias", None)
        self.head.load_state_dict(weights)
