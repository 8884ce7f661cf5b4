"""Export a checkpoint of this project as a peft sequence-classification adapter, the layout that
`AutoModelForSequenceClassification.from_pretrained(base, num_labels=1)` + `PeftModel.from_pretrained` load (and
with them Tevatron's reranker and the paper's code); see model/seq_cls.py.

    python -m rerank_lora.export checkpoint=PATH out=FOLDER

FOLDER gets adapter_config.json (task_type SEQ_CLS, base_model_name_or_path: the job's hub id or local model
folder; a tiny test model is saved into FOLDER/base), adapter_model.safetensors with the head as `score`, the
tokenizer, and rerank_lora.json (the input template, its options, the pair length, and where the score is read:
read_rule, read_pad_id; model/read_position.py). Load it as:

    model = AutoModelForSequenceClassification.from_pretrained(base, num_labels=1)
    model = PeftModel.from_pretrained(model, FOLDER)

A checkpoint trained with template=tevatron (or rankllama_v1) reads the score as a classifier does, at the last token
that is not read_pad_id: the exported tokenizer's pad token is that id, so Tevatron's rerank driver reads it back
unchanged with `--model_name_or_path BASE --lora_name_or_path FOLDER --tokenizer_name FOLDER` and the template's
options (`--query_prefix`, `--passage_prefix`, `--append_eos_token`, `--rerank_max_len`) from rerank_lora.json; with
plain transformers set `model.config.pad_token_id = read_pad_id`. A rerank_lora checkpoint reads the last attended
token (its EOS): with pad == EOS (SmolLM2, Llama 3) set another pad id or score one pair at a time.
"""

import json
import logging
from pathlib import Path

from safetensors.torch import load_file

from rerank_lora import cli
from rerank_lora.analysis.imported_job import EXPORT_INFO
from rerank_lora.analysis.trained_job import checkpoint_folders, saved_spec, step_of
from rerank_lora.disk import write_folder_atomic
from rerank_lora.errors import InputError
from rerank_lora.job.builders import load_base
from rerank_lora.job_folder import HEAD_FILE, INFO_FILE
from rerank_lora.model.backbone import ModelSpec, gguf_cache
from rerank_lora.model.read_position import ReadPosition
from rerank_lora.model.seq_cls import (
    read_adapter_config,
    read_weights,
    seq_cls_config,
    to_seq_cls,
    transformer_prefix,
    write_adapter,
)

log = logging.getLogger("rerank_lora.export")
DEFAULTS = {"checkpoint": "???", "out": "???"}


def export(args: list[str]) -> Path:
    cfg = cli.parse_args(args, DEFAULTS, required=("checkpoint", "out"))
    out = Path(cfg.out).expanduser()
    if out.exists() and any(out.iterdir()):
        raise InputError(f"out={out}: exists and is not empty; give a new folder")
    (folder,) = checkpoint_folders(cfg.checkpoint, every=False)
    spec, _ = saved_spec(folder)
    model, data = spec.model, spec.data
    if model.num_layers is not None:  # a classifier on the base would run every layer and score from the last
        raise InputError(
            f"{folder}: trained with model.num_layers={model.num_layers}; export writes a classifier over the whole "
            "base model; accepted: checkpoints of jobs without model.num_layers (rerank, ablate and probe read this one)"
        )
    read = ReadPosition.from_json(json.loads((folder / INFO_FILE).read_text()))
    with write_folder_atomic(out) as staging:
        base, tokenizer = _base(model, staging, out, read.pad_id)
        head = load_file(folder / HEAD_FILE)  # an older checkpoint's head bias is left out, as Reranker.load_head does
        weights = to_seq_cls(read_weights(folder), head["weight"], transformer_prefix(model.family))
        write_adapter(staging, seq_cls_config(read_adapter_config(folder), base), weights)
        if read.pad_id is not None:  # Tevatron's drivers pin the classifier's pad id to the tokenizer's pad token
            tokenizer.pad_token = tokenizer.convert_ids_to_tokens(read.pad_id)
        tokenizer.save_pretrained(staging)
        info = {"template": data.template, "query_prefix": data.query_prefix, "passage_prefix": data.passage_prefix,
                "append_eos": data.append_eos, "max_length": data.max_length, "step": step_of(folder), **read.to_json()}
        info["checkpoint"] = str(folder.resolve())
        (staging / EXPORT_INFO).write_text(json.dumps(info, indent=2), encoding="utf-8")
    return out


def _base(model: ModelSpec, staging: Path, out: Path, pad_id: int | None) -> tuple[str, object]:
    """Where a loader finds the base model (a tiny test model is saved beside the adapter, its config's pad id the
    classifier's), and the tokenizer."""
    if model.source == "tiny":
        backbone, tokenizer = load_base(model)
        if pad_id is not None:
            backbone.config.pad_token_id = pad_id
        backbone.save_pretrained(staging / "base")
        tokenizer.save_pretrained(staging / "base")
        return str((out / "base").resolve()), tokenizer
    if model.source == "gguf":
        folder = gguf_cache(model.gguf["package"], model.gguf["file"], model.cache_dir)
        return str(folder.resolve()), _tokenizer(folder)
    where = model.path or model.hub_id
    return str(Path(where).expanduser().resolve()) if model.path else where, _tokenizer(where)


def _tokenizer(where):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(where)


def main() -> None:
    cli.main(export)


if __name__ == "__main__":
    main()
