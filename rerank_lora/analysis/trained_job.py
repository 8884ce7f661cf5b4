"""A trained job rebuilt from its checkpoint folders (`<job>/checkpoints/step-N/`) with the code paths run.py
uses: the job's config, its data, the base backbone with a checkpoint's adapter and head. One model is
loaded; `switch_to` puts another checkpoint's weights into it in place."""

import dataclasses
import json
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf
from peft import set_peft_model_state_dict
from safetensors.torch import load_file

from rerank_lora.analysis.imported_job import ImportOptions, import_adapter, is_foreign
from rerank_lora.configs import to_spec
from rerank_lora.data.collection import load_collection
from rerank_lora.data.datamodule import RerankDataModule
from rerank_lora.data.spec import DataSpec
from rerank_lora.errors import InputError
from rerank_lora.evaluation.metrics import check_split_cutoffs
from rerank_lora.job_folder import ADAPTER_CONFIG, ADAPTER_FILE, INFO_FILE, JobFolder, step_of_name
from rerank_lora.model.backbone import ModelSpec, load_backbone
from rerank_lora.model.reranker import Reranker
from rerank_lora.train.precision import resolve_precision


def check_count(key: str, value, null: str | None = None) -> None:
    """An analysis command's count argument: an integer >= 1, or null where `null` says what null means."""
    if (value is None and null is None) or (value is not None and (not isinstance(value, int) or value < 1)):
        raise InputError(f"{key}={value!r}; accepted: an integer >= 1" + (f" (null: {null})" if null else ""))


def step_of(folder: Path) -> int:
    info = json.loads((folder / INFO_FILE).read_text())
    if "step" in info:
        return int(info["step"])
    step = step_of_name(folder.name)
    return -1 if step is None else step


def checkpoint_folders(path, every: bool, imports: ImportOptions | None = None) -> list[Path]:
    """The checkpoint folders `path` names: a checkpoint folder itself, or a job folder's checkpoints
    (all of them, by step, when `every`; else its last one), or a published adapter (a peft adapter folder or
    hf:owner/name) imported as a job of this project with `imports`."""
    if is_foreign(str(path)):
        return [import_adapter(str(path), imports or ImportOptions())]
    folder = Path(str(path)).expanduser()
    if (folder / INFO_FILE).is_file():
        return [folder]
    if not folder.is_dir():
        raise InputError(
            f"checkpoint={path}: no such folder; give <job>/checkpoints/step-N, a job folder, a peft adapter folder, hf:ID"
        )
    found = [f for _, f in JobFolder(folder).checkpoints() if (f / INFO_FILE).is_file()]
    if not found:
        raise InputError(
            f"checkpoint={path}: not a checkpoint folder (with {INFO_FILE}), a job folder with checkpoints/step-N, "
            f"nor a peft adapter folder (no {ADAPTER_CONFIG})"
        )
    return found if every else found[-1:]


def job_config(folder: Path) -> tuple[DictConfig, Path]:
    """The job's config (reranker.json points to it, `../../.hydra/config.yaml`) and the job folder."""
    info = json.loads((folder / INFO_FILE).read_text())
    path = (folder / info.get("config", "../../.hydra/config.yaml")).resolve()
    if not path.is_file():
        raise InputError(f"{folder}: the job's config {path} is missing")
    return OmegaConf.load(path), path.parent.parent


def scoring_precision(folder: Path, cfg: DictConfig) -> str:
    """The precision the checkpoint's job scored in (its reranker.json), so a re-scoring tool reproduces the job's
    scores; a checkpoint written before it was recorded: the job's trainer.precision resolved on this machine."""
    info = json.loads((folder / INFO_FILE).read_text())
    return info.get("precision") or resolve_precision(cfg.trainer.precision, cfg.trainer.get("accelerator", "cpu"))


def merges(merge: bool | None, precision: str) -> bool:
    """merge=null folds LoRA into the weights only in 32-true, where that moves scores by float32 rounding alone;
    in mixed precision the job computed the LoRA update apart from the bf16-cast base weights, so re-scoring must too."""
    return precision == "32-true" if merge is None else bool(merge)


class TrainedJob:
    """The reranker of one checkpoint on a once-loaded base backbone, and the job's data reranking `splits`
    at `depth` (null: the job's data.eval_depth). What analyses need of the job's config is here as plain
    values: `model` (its ModelSpec), `measures`, `seed`, `depth`."""

    def __init__(self, folder: Path, splits: list[str], depth: int | None = None):
        self.cfg, self.job_dir = job_config(folder)
        check_count("depth", depth, null="the job's data.eval_depth")
        data = to_spec(DataSpec, self.cfg.data, "data")
        data = dataclasses.replace(data, eval_splits=list(dict.fromkeys(splits)), eval_depth=depth or data.eval_depth)
        self.depth = data.eval_depth
        check_split_cutoffs(self.cfg.measures, data, data.eval_splits, "depth")  # before any model loads
        self.model = to_spec(ModelSpec, self.cfg.model, "model")
        self.measures: list[str] = list(self.cfg.measures)
        self.seed = int(self.cfg.seed)
        collection = load_collection(data)
        base, tokenizer = load_backbone(self.model)
        self.reranker = Reranker.load(folder, base).eval()
        self.reranker.precision = scoring_precision(folder, self.cfg)
        self.data = RerankDataModule(collection, tokenizer, data, self.cfg.seed)
        self.device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        self.reranker.to(self.device)
        self.folder, self.step = folder, step_of(folder)
        self._adapter_config = (folder / ADAPTER_CONFIG).read_text()

    def switch_to(self, folder: Path) -> None:
        """Another checkpoint of the same job: its LoRA and head weights copied into the loaded model."""
        if folder == self.folder:
            return
        if json.loads((folder / ADAPTER_CONFIG).read_text()) != json.loads(self._adapter_config):
            raise InputError(f"{folder}: its adapter config differs from {self.folder}'s; run it on its own")
        set_peft_model_state_dict(self.reranker.backbone, load_file(folder / ADAPTER_FILE, device=str(self.device)))
        self.reranker.load_head(folder)
        self.folder, self.step = folder, step_of(folder)
