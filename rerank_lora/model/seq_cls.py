"""peft adapters in the sequence-classification layout, to and from this project's checkpoint files.

That layout is what `AutoModelForSequenceClassification.from_pretrained(base, num_labels=1)` + `PeftModel`
load: RankLLaMA's adapters, the paper's checkpoints, Tevatron's reranker. There the transformer sits under the
classifier's `base_model_prefix` (`model` for LLaMA and Mistral, `gpt_neox` for Pythia), so a LoRA weight reads
`base_model.model.<prefix>.layers.0.self_attn.q_proj.lora_A.weight`, and the score head is the classifier's
`score` linear layer (no bias), saved as `base_model.model.score.weight`. This project's adapters wrap the bare
transformer (`base_model.model.layers.0...`) and keep the head (a weight, no bias) in head.safetensors.
"""

import json
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from transformers import CONFIG_MAPPING, MODEL_MAPPING

from rerank_lora.errors import InputError
from rerank_lora.job_folder import ADAPTER_CONFIG, ADAPTER_FILE, HEAD_FILE

PEFT_ROOT = "base_model.model."
SCORE_KEYS = ("score.weight", "score.modules_to_save.weight", "score.default.weight")


def transformer_prefix(family: str) -> str:
    """Where a classifier of `family` (a transformers model type) keeps its transformer: `model`, `gpt_neox`."""
    try:
        return MODEL_MAPPING[CONFIG_MAPPING[family]].base_model_prefix
    except KeyError:
        raise InputError(f"model family {family!r} is not a transformers model type with a base model") from None


def read_adapter_config(folder: Path) -> dict:
    path = folder / ADAPTER_CONFIG
    if not path.is_file():
        raise InputError(
            f"{folder}: no {ADAPTER_CONFIG}; a peft adapter folder holds {ADAPTER_CONFIG} and {ADAPTER_FILE}"
        )
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise InputError(f"{path}: not a JSON file ({err})") from None
    if config.get("peft_type") != "LORA":
        raise InputError(f"{path}: peft_type={config.get('peft_type')!r}; accepted: LORA")
    return config


def read_weights(folder: Path) -> dict[str, torch.Tensor]:
    """The adapter's tensors, from safetensors only: a pickled adapter_model.bin is refused (loading it can run
    code)."""
    path = folder / ADAPTER_FILE
    if not path.is_file():
        pickled = " (it has adapter_model.bin, a pickle, which is not loaded)" if (folder / "adapter_model.bin").is_file() else ""
        raise InputError(
            f"{folder}: no {ADAPTER_FILE}{pickled}; convert it with peft once, in a trusted environment: "
            f"PeftModel.from_pretrained(...).save_pretrained(folder, safe_serialization=True)"
        )
    try:
        return load_file(path)
    except Exception as err:  # safetensors raises its own error types for damaged files
        raise InputError(f"{path}: not a readable safetensors file ({type(err).__name__}: {err})") from None


def from_seq_cls(weights: dict[str, torch.Tensor], prefix: str, where: Path) -> tuple[dict, torch.Tensor]:
    """A classifier adapter's tensors as (this project's adapter tensors, the score head's weight)."""
    score = next((weights[PEFT_ROOT + k] for k in SCORE_KEYS if PEFT_ROOT + k in weights), None)
    if score is None or score.shape[0] != 1:
        raise InputError(
            f"{where}: no one-output score head ({PEFT_ROOT}score.weight); accepted: a peft adapter saved from "
            f"AutoModelForSequenceClassification(num_labels=1) with task_type SEQ_CLS"
        )
    inner = f"{PEFT_ROOT}{prefix}."
    adapter = {}
    for key, value in weights.items():
        if key.startswith(inner):
            adapter[PEFT_ROOT + key[len(inner) :]] = value
        elif not key.startswith(PEFT_ROOT + "score."):
            raise InputError(
                f"{where}: tensor {key!r} is not under {inner!r}, where a classifier of the base's family keeps its "
                f"transformer: is base= the adapter's base model?"
            )
    if not adapter:
        raise InputError(f"{where}: no LoRA tensors under {inner!r}; is base= the adapter's base model?")
    return adapter, score


def to_seq_cls(adapter: dict[str, torch.Tensor], head_weight: torch.Tensor, prefix: str) -> dict[str, torch.Tensor]:
    """This project's adapter tensors and head weight in the classifier layout (the inverse of from_seq_cls)."""
    moved = {f"{PEFT_ROOT}{prefix}.{key[len(PEFT_ROOT):]}": value for key, value in adapter.items()}
    return moved | {f"{PEFT_ROOT}score.weight": head_weight.reshape(1, -1)}


def seq_cls_config(project_config: dict, base: str) -> dict:
    """An adapter config of this project rewritten for the classifier layout."""
    return project_config | {"task_type": "SEQ_CLS", "modules_to_save": ["score"], "base_model_name_or_path": base}


def project_config(seq_cls: dict, adapter: dict[str, torch.Tensor], base: str) -> dict:
    """A classifier adapter's config rewritten for this project's layout: the bare transformer, no head module.
    A target_modules regex (matched against the classifier's module names) becomes the projections it hit."""
    targets = seq_cls.get("target_modules")
    if not isinstance(targets, list):
        targets = sorted({key.split(".lora_")[0].rsplit(".", 1)[-1] for key in adapter if ".lora_" in key})
    return seq_cls | {"task_type": None, "modules_to_save": None, "base_model_name_or_path": base, "target_modules": targets}


def write_project_checkpoint(folder: Path, config: dict, adapter: dict, score: torch.Tensor) -> None:
    """Adapter and head files of this project's layout (reranker.json is the caller's)."""
    write_adapter(folder, config, adapter)
    save_file({"weight": score.reshape(1, -1).float().contiguous()}, folder / HEAD_FILE)


def write_adapter(folder: Path, config: dict, weights: dict) -> None:
    """A peft adapter's two files, in either layout."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / ADAPTER_CONFIG).write_text(json.dumps(config, indent=2), encoding="utf-8")
    save_file({k: v.contiguous() for k, v in weights.items()}, folder / ADAPTER_FILE)
