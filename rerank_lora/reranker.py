"""The reranker: a LoRA-adapted backbone and a linear head on the last real token (RankLLaMA-style)."""

import json
from pathlib import Path

import lightning as L
import torch
from peft import PeftModel
from safetensors.torch import load_file, save_file
from torch import nn

HEAD_FILE = "head.safetensors"


class Reranker(L.LightningModule):
    """Scores `query: {q} document: {d}</s>` pairs; trained with softmax cross-entropy over groups
    of one positive (first) and group_size - 1 negatives."""

    def __init__(self, backbone: nn.Module, group_size: int, optim):
        super().__init__()
        self.backbone = backbone
        self.head = nn.Linear(backbone.config.hidden_size, 1)
        nn.init.normal_(self.head.weight, std=backbone.config.hidden_size**-0.5)
        nn.init.zeros_(self.head.bias)
        self.group_size = group_size
        self.optim = optim
        self.strict_loading = False  # resume checkpoints hold only the trained weights

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        """Keep LoRA and head weights only: the frozen base is reloaded from its source on resume."""
        trained = {name for name, p in self.named_parameters() if p.requires_grad}
        checkpoint["state_dict"] = {k: v for k, v in checkpoint["state_dict"].items() if k in trained}

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        hidden = self.backbone(input_ids=input_ids, attention_mask=attention_mask, use_cache=False).last_hidden_state
        last = attention_mask.sum(dim=1) - 1  # right-padded: the EOS of each pair
        pooled = hidden[torch.arange(hidden.size(0), device=hidden.device), last]
        return self.head(pooled.float()).squeeze(-1)

    def training_step(self, batch, batch_idx):
        scores = self(batch["input_ids"], batch["attention_mask"]).view(-1, self.group_size)
        target = torch.zeros(scores.size(0), dtype=torch.long, device=scores.device)
        loss = nn.functional.cross_entropy(scores, target)
        self.log("train/loss", loss, prog_bar=True, batch_size=scores.size(0))
        return loss

    def configure_optimizers(self):
        lora = [p for p in self.backbone.parameters() if p.requires_grad]
        head_lr = self.optim.get("head_lr") or self.optim.lr
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

    def save(self, folder: Path, info: dict) -> None:
        """The adapter (peft format), the head, and what is needed to rebuild the reranker."""
        folder.mkdir(parents=True, exist_ok=True)
        self.backbone.save_pretrained(folder)
        save_file({k: v.detach().cpu().contiguous() for k, v in self.head.state_dict().items()}, folder / HEAD_FILE)
        (folder / "reranker.json").write_text(json.dumps(info, indent=2))

    @classmethod
    def load(cls, folder: Path, base: nn.Module, group_size: int = 1, optim=None) -> "Reranker":
        """A reranker from `save`'s folder on a freshly loaded base backbone."""
        reranker = cls(PeftModel.from_pretrained(base, folder), group_size, optim)
        reranker.head.load_state_dict(load_file(folder / HEAD_FILE))
        return reranker
