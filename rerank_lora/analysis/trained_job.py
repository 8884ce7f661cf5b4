"""A trained job rebuilt from its checkpoint folders (`<job>/checkpoints/step-N/`) with the code paths run.py
uses: the job's config, its data, the base backbone with a checkpoint's adapter and head. One model is
loaded; `switch_to` puts another checkpoint's weights into it in place."""

import dataclasses
import json
import logging
from pathlib import Path

from peft import set_peft_model_state_dict
from safetensors.torch import load_file

from rerank_lora.analysis.imported_job import ImportOptions, import_adapter, is_foreign
from rerank_lora.configs import data_group_splits, saved_config
from rerank_lora.data.collection import load_collection
from rerank_lora.data.spec import split_depth
from rerank_lora.errors import InputError, check_int
from rerank_lora.evaluation.metrics import check_split_cutoffs
from rerank_lora.job.builders import build_data, load_checkpoint
from rerank_lora.job.spec import JobSpec
from rerank_lora.job_folder import ADAPTER_CONFIG, ADAPTER_FILE, INFO_FILE, JobFolder, step_of_name

log = logging.getLogger(__name__)


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


def job_config(folder: Path) -> tuple[dict, Path]:
    """The job's saved config as plain values (reranker.json points to it, `../../.hydra/config.yaml`) and the
    job folder."""
    info = json.loads((folder / INFO_FILE).read_text())
    path = (folder / info.get("config", "../../.hydra/config.yaml")).resolve()
    if not path.is_file():
        raise InputError(f"{folder}: the job's config {path} is missing")
    return saved_config(path), path.parent.parent


def saved_spec(folder: Path) -> tuple[JobSpec, Path]:
    """The checkpoint's job as specs, computing in the precision the job scored in (its reranker.json), so a
    re-scoring tool reproduces the job's scores (a checkpoint written before that was recorded: the job's
    trainer.precision resolved on this machine); and the job folder."""
    values, job_dir = job_config(folder)
    precision = json.loads((folder / INFO_FILE).read_text()).get("precision")
    return JobSpec.from_config(values, precision), job_dir


def with_later_splits(data, splits: list[str]):
    """`data` (a job's DataSpec) with the data.splits entries its data config group defines now for those of
    `splits` the job's saved config lacks: a split added to the shipped data after the job ran (data=msmarco_mini's
    `discrim`, reranked to its depth 100, not the job's eval_depth) is scored as a job started today would."""
    missing = [s for s in splits if s not in data.splits]
    later = {s: v for s, v in data_group_splits(data.name).items() if s in missing} if missing else {}
    if not later:
        return data
    log.info("data.splits of data=%s as defined now (the job's config predates them): %s", data.name, later)
    return dataclasses.replace(data, splits={**data.splits, **later})


def merges(merge: bool | None, precision: str) -> bool:
    """merge=null folds LoRA into the weights only in 32-true, where that moves scores by float32 rounding alone;
    in mixed precision the job computed the LoRA update apart from the bf16-cast base weights, so re-scoring must too."""
    return precision == "32-true" if merge is None else bool(merge)


class TrainedJob:
    """The reranker of one checkpoint on a once-loaded base backbone, and the job's data reranking `splits`
    at `depth` (null: the job's data.eval_depth), measured by `measures` (null: the job's own). What analyses need
    of the job's config is here as plain values: `model` (its ModelSpec), `measures`, `seed`, `depth`; its `tokenizer`."""

    def __init__(self, folder: Path, splits: list[str], depth: int | None = None, measures: list[str] | None = None):
        spec, self.job_dir = saved_spec(folder)
        check_int("depth", depth, null="the job's data.eval_depth")
        data = with_later_splits(spec.data, splits)
        data = dataclasses.replace(data, eval_splits=list(dict.fromkeys(splits)), eval_depth=depth or data.eval_depth)
        self.spec = dataclasses.replace(spec, data=data)
        self.depth = data.eval_depth
        self.measures = list(measures or spec.measures)
        check_split_cutoffs(self.measures, data, data.eval_splits, "depth")  # before any model loads
        self.model, self.seed = spec.model, spec.seed
        collection = load_collection(data)
        self.reranker, self.tokenizer = load_checkpoint(folder, self.spec)
        self.data = build_data(data, spec.seed, self.tokenizer, collection)
        self.device = next(self.reranker.parameters()).device
        self.folder, self.step = folder, step_of(folder)
        self._adapter_config = (folder / ADAPTER_CONFIG).read_text()

    def depth_of(self, split: str) -> int:
        """How deep `split` is reranked: its data.splits entry's depth (e.g. discrim's 100), else `depth`."""
        return split_depth(self.spec.data, split)

    def switch_to(self, folder: Path) -> None:
        """Another checkpoint of the same job: its LoRA and head weights copied into the loaded model."""
        if folder == self.folder:
            return
        if json.loads((folder / ADAPTER_CONFIG).read_text()) != json.loads(self._adapter_config):
            raise InputError(f"{folder}: its adapter config differs from {self.folder}'s; run it on its own")
        set_peft_model_state_dict(self.reranker.backbone, load_file(folder / ADAPTER_FILE, device=str(self.device)))
        self.reranker.load_head(folder)
        self.folder, self.step = folder, step_of(folder)
