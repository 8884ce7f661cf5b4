"""A job's specs: what every config group of a job becomes, in one frozen dataclass. `JobSpec.from_config` (on the
config as plain values: configs.job_spec) is the only place a job's config becomes specs."""

import dataclasses
from dataclasses import dataclass

from rerank_lora.data.spec import DataSpec
from rerank_lora.errors import InputError, check_int
from rerank_lora.model.backbone import ModelSpec
from rerank_lora.model.lora import LoraSpec, target_modules
from rerank_lora.model.precision import resolve_precision
from rerank_lora.model.reranker import Optim
from rerank_lora.train.probe_head import HeadInit
from rerank_lora.train.schedule import checkpoint_steps

# The `trainer` group's keys that say how the model computes; the others are the Lightning Trainer's arguments.
COMPUTE_KEYS = ("gradient_checkpointing", "length_chunks", "packed", "compile")


def group_spec(cls, values: dict | None, group: str):
    """The config group `group` (plain values) as the dataclass `cls` whose fields mirror it; unknown keys get one
    error naming the accepted ones."""
    values = dict(values or {})
    accepted = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(values) - set(accepted))
    if unknown:
        raise InputError(f"{group}: unknown key(s) {unknown}; accepted: {', '.join(accepted)}")
    return cls(**values)


@dataclass(frozen=True)
class Compute:
    """How the model computes: the precision (resolved: never `auto`) and the `trainer` group's own levers."""

    precision: str = "32-true"
    packed: bool = False
    compile: bool = False
    gradient_checkpointing: bool = False
    length_chunks: int | None = None  # score a training batch this many pairs at a time; None: all at once

    def __post_init__(self):
        why = "pairs scored at a time in training"
        check_int("trainer.length_chunks", self.length_chunks, 1, why=why, null="the whole batch")


@dataclass(frozen=True)
class JobSpec:
    model: ModelSpec
    lora: LoraSpec
    targets: tuple[str, ...]  # the projections LoRA adapts (targets.modules resolved for the model family)
    data: DataSpec
    optim: Optim
    head: HeadInit
    steps: tuple[int, ...]  # the checkpoint schedule's steps
    measures: tuple[str, ...]
    select_by: str
    seed: int
    trainer: dict  # the Lightning Trainer's arguments, precision resolved
    compute: Compute

    @classmethod
    def from_config(cls, values: dict, precision: str | None = None) -> "JobSpec":
        """A job's config as plain values (resolved); `precision`: the precision to compute in (a checkpoint's
        own), else trainer.precision resolved on this machine."""
        trainer = {k: v for k, v in dict(values["trainer"]).items() if k != "_target_"}
        compute_values = {k: trainer.pop(k) for k in COMPUTE_KEYS if k in trainer}
        declared, accelerator = trainer.get("precision", "32-true"), trainer.get("accelerator", "cpu")
        trainer["precision"] = precision or resolve_precision(declared, accelerator)
        model = group_spec(ModelSpec, values["model"], "model")
        return cls(
            model=model,
            lora=group_spec(LoraSpec, values["lora"], "lora"),
            targets=tuple(target_modules(values["targets"]["modules"], model.modules)),
            data=group_spec(DataSpec, values["data"], "data"),
            optim=group_spec(Optim, values.get("optim"), "optim"),
            head=group_spec(HeadInit, values.get("head"), "head"),
            steps=tuple(checkpoint_steps(trainer["max_steps"], **(values.get("schedule") or {}))),
            measures=tuple(values["measures"]),
            select_by=values.get("select_by", "nDCG@10"),
            seed=int(values["seed"]),
            trainer=trainer,
            compute=Compute(precision=trainer["precision"], **compute_values),
        )
