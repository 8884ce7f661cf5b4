"""A published adapter (a peft sequence-classification adapter: RankLLaMA, the paper's checkpoints, one exported by
`rerank_lora.export`) made into a job folder of this project, so every tool reads it as one of its own:

    <imported_dir>/<name>.<template>/.hydra/config.yaml           the default job config, its model the adapter's base
    <imported_dir>/<name>.<template>/checkpoints/step-N/          adapter, head, reranker.json (N: from checkpoint-N, else 0)

The adapter is a local folder or `hf:owner/name[@revision][/subfolder]`, read from the Hugging Face cache and
downloaded only when the hub answers (JSON and safetensors files only: nothing that can run code). Its base is
`base=` or the adapter config's `base_model_name_or_path` (a hub id or a local folder).
"""

import json
import re
from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import AutoConfig, AutoModel

from rerank_lora.configs import CONF_DIR, default_job_yaml, saved_config
from rerank_lora.data.offline import why_no_download
from rerank_lora.data.pairs import check_template
from rerank_lora.errors import InputError
from rerank_lora.job_folder import ADAPTER_CONFIG, ADAPTER_FILE, INFO_FILE, JobFolder, write_atomic
from rerank_lora.model.read_position import read_position
from rerank_lora.model.seq_cls import (
    from_seq_cls,
    project_config,
    read_adapter_config,
    read_weights,
    transformer_prefix,
    write_project_checkpoint,
)

HUB_REF = re.compile(r"hf:(?P<repo>[\w.-]+/[\w.-]+)(?:@(?P<revision>[^/]+))?(?:/(?P<subfolder>.+))?")
HF_STEP = re.compile(r"checkpoint-(\d+)")  # Hugging Face Trainer's step folders
EXPORT_INFO = "rerank_lora.json"  # written by rerank_lora.export: the template and length it was trained with
IMPORTED_PRECISION = "32-true"  # a published adapter is scored in its weights' dtype (_model_node), no autocast
DEFAULT_MAX_LENGTH = 196  # the length RankLLaMA's recipe and the paper train with (conf/recipe/rankllama.yaml)
# How a published adapter without rerank_lora.json was trained: Tevatron's reranker with RankLLaMA's prefixes
# (conf/recipe/rankllama.yaml); RankLLaMA v1 itself needs template=rankllama_v1.
PUBLISHED_TEMPLATE = {"template": "tevatron", "query_prefix": "query: ", "passage_prefix": "document: ", "append_eos": False}


IMPORT_ARGS = {  # the arguments of every tool that takes checkpoint=, for a published adapter
    "base": None,  # its base model, a hub id or a local folder (null: the adapter config's)
    "template": None,  # its input template, rerank_lora | tevatron | rankllama_v1 (null: the export's, else tevatron)
    "query_prefix": None,  # template=tevatron: the prefixes and EOS it was trained with (null: the export's, else
    "passage_prefix": None,  # RankLLaMA's: "query: ", "document: ", no EOS)
    "append_eos": None,
    "max_length": None,  # its pair length in tokens (null: the export's, else 196)
    "imported_dir": "outputs/imported",  # where imported adapters become job folders
}


@dataclass(frozen=True)
class ImportOptions:
    """How to read a published adapter: its base (None: the adapter config's), its input template and the
    template's options (None: the export's, else PUBLISHED_TEMPLATE), its pair length (None: the export's, else
    196), where imported jobs go."""

    base: str | None = None
    template: str | None = None
    query_prefix: str | None = None
    passage_prefix: str | None = None
    append_eos: bool | None = None
    max_length: int | None = None
    imported_dir: str = "outputs/imported"


def import_options(cfg) -> ImportOptions:
    """The IMPORT_ARGS of a tool's parsed arguments."""
    return ImportOptions(**{key: cfg[key] for key in IMPORT_ARGS})


def is_foreign(path: str) -> bool:
    """A hub reference, or a folder holding a peft adapter but no checkpoint of this project."""
    folder = Path(path).expanduser()
    return path.startswith("hf:") or ((folder / ADAPTER_CONFIG).is_file() and not (folder / INFO_FILE).is_file())


def import_adapter(ref: str, options: ImportOptions) -> Path:
    """The checkpoint folder of the imported job of adapter `ref` (written anew on every call)."""
    folder = adapter_folder(ref)
    seq_cls = read_adapter_config(folder)
    base = options.base or seq_cls.get("base_model_name_or_path")
    if not base:
        raise InputError(f"checkpoint={ref}: its {ADAPTER_CONFIG} names no base model; pass base=HUB_ID or a local folder")
    base_config = _base_config(base)
    family = base_config.model_type
    adapter, score = from_seq_cls(read_weights(folder), transformer_prefix(family), folder)
    _check_sites(adapter, base_config, base, folder)
    exported = json.loads((folder / EXPORT_INFO).read_text()) if (folder / EXPORT_INFO).is_file() else {}
    inputs = input_template(options, exported)
    template, max_length = inputs["template"], options.max_length or exported.get("max_length", DEFAULT_MAX_LENGTH)
    job = JobFolder(Path(options.imported_dir).expanduser() / f"{_name(ref, folder)}.{template}")
    config = project_config(seq_cls, adapter, base)
    _write_job_config(job, _model_node(family, base, job.path.name), config, inputs | {"max_length": max_length})
    read = read_position(template, _tokenizer(folder, base))
    step = _step(ref, folder)
    checkpoint = job.checkpoint(step)
    write_project_checkpoint(checkpoint, config, adapter, score)
    info = {"step": step, "config": "../../.hydra/config.yaml", "imported_from": ref, "base": base}
    info |= {"precision": IMPORTED_PRECISION} | inputs | read.to_json()
    write_atomic(checkpoint / INFO_FILE, json.dumps(info, indent=2))
    return checkpoint


def input_template(options: ImportOptions, exported: dict) -> dict:
    """The template and its options: each as `options` give it, else as the export recorded, else PUBLISHED_TEMPLATE."""
    chosen = {key: getattr(options, key) for key in PUBLISHED_TEMPLATE}
    chosen = {key: exported.get(key, PUBLISHED_TEMPLATE[key]) if value is None else value for key, value in chosen.items()}
    check_template(chosen["template"])
    return chosen


def _tokenizer(folder: Path, base: str):
    """The tokenizer a Tevatron-trained adapter was saved with (its pad token set by the trainer), else the base's."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(folder if (folder / "tokenizer_config.json").is_file() else base)


def adapter_folder(ref: str) -> Path:
    """The local folder of `ref`: the folder itself, or the hub snapshot in the Hugging Face cache."""
    if not ref.startswith("hf:"):
        folder = Path(ref).expanduser()
        if not folder.is_dir():
            raise InputError(f"checkpoint={ref}: no such folder; give a checkpoint folder, a peft adapter folder, hf:owner/name")
        return folder
    match = HUB_REF.fullmatch(ref)
    if not match:
        raise InputError(f"checkpoint={ref!r}; accepted: hf:owner/name, hf:owner/name@revision, hf:owner/name[@rev]/subfolder")
    repo, revision, subfolder = match["repo"], match["revision"], match["subfolder"]
    return Path(_snapshot(repo, revision, subfolder)) / (subfolder or "")


def _snapshot(repo: str, revision: str | None, subfolder: str | None) -> str:
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    inside = f"{subfolder}/" if subfolder else ""
    files = [f"{inside}{name}" for name in (ADAPTER_CONFIG, ADAPTER_FILE, EXPORT_INFO)]  # JSON and safetensors only
    get = dict(repo_id=repo, revision=revision, allow_patterns=files)
    try:
        return snapshot_download(**get, local_files_only=True)
    except LocalEntryNotFoundError:
        pass
    why = why_no_download(f"https://huggingface.co/{repo}")
    fetch = f"huggingface-cli download {repo}" + (f" --revision {revision}" if revision else "")
    if why:
        raise InputError(
            f"checkpoint=hf:{repo}: not in the Hugging Face cache and {why}; on a machine with network run `{fetch}` "
            f"(with the same HF_HOME), or download the adapter folder and pass checkpoint=/that/folder"
        )
    try:
        return snapshot_download(**get)
    except OSError as err:
        raise InputError(f"checkpoint=hf:{repo}: cannot download it ({str(err).splitlines()[0]}); try `{fetch}`") from None


def _base_config(base: str):
    try:
        return AutoConfig.from_pretrained(base)
    except (OSError, ValueError) as err:
        raise InputError(
            f"base={base}: cannot read its config ({str(err).strip().splitlines()[0]}); give base= a local folder of "
            f"the base model, or fill the Hugging Face cache on a machine with network: huggingface-cli download {base}"
        ) from None


def _check_sites(adapter: dict, base_config, base: str, where: Path) -> None:
    """Every LoRA tensor sits on a linear layer of the base (checked on a weightless copy of it)."""
    with torch.device("meta"):
        modules = dict(AutoModel.from_config(base_config).named_modules())
    sites = sorted({key[len("base_model.model.") :].split(".lora_")[0] for key in adapter if ".lora_" in key})
    missing = [s for s in sites if not isinstance(modules.get(s), torch.nn.Linear)]
    if missing:
        linear = sorted({name.rsplit(".", 1)[-1] for name, m in modules.items() if isinstance(m, torch.nn.Linear)})
        raise InputError(
            f"{where}: its LoRA modules ({', '.join(missing[:3])}{' ...' if len(missing) > 3 else ''}) are not linear "
            f"layers of base {base} ({base_config.model_type}); that base's projections: {linear}"
        )


def _model_node(family: str, base: str, name: str) -> dict:
    """The `model` config of the base: loaded from the hub or its folder, projections named as the family's
    configs in conf/model name them."""
    configs = (saved_config(path, resolve=False) for path in sorted((CONF_DIR / "model").glob("*.yaml")))
    modules = next((node["modules"] for node in configs if node.get("family") == family), None)
    if modules is None:
        raise InputError(f"base family {family!r}: no model config in {CONF_DIR / 'model'} names its projections")
    local = Path(base).expanduser().is_dir()
    return {
        "name": name,
        "family": family,
        "source": "hub",
        "hub_id": None if local else base,
        "path": str(Path(base).expanduser().resolve()) if local else None,
        "dtype": "bfloat16" if torch.cuda.is_available() else "float32",
        "modules": modules,
    }


def _write_job_config(job: JobFolder, model: dict, adapter_config: dict, inputs: dict) -> None:
    """The default job's config with the adapter's model, LoRA shape and input template (`inputs`: data keys)."""
    layers = adapter_config.get("layers_to_transform")
    values = {f"data.{key}": value for key, value in inputs.items()} | {
        "model": model | {"cache_dir": "${cache_dir}"},  # as every model config has it: the job's cache_dir
        "lora.rank": adapter_config["r"],
        "lora.alpha": adapter_config["lora_alpha"],
        "lora.dropout": adapter_config.get("lora_dropout", 0.0),
        "lora.layers": [layers] if isinstance(layers, int) else layers,
        "targets.modules": list(adapter_config["target_modules"]),
    }
    job.config_file.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(job.config_file, default_job_yaml(values))


def _name(ref: str, folder: Path) -> str:
    if ref.startswith("hf:"):
        return re.sub(r"[^\w.@-]+", "--", ref[3:]).strip("-")
    return folder.resolve().name


def _step(ref: str, folder: Path) -> int:
    found = HF_STEP.search(ref if ref.startswith("hf:") else folder.name)
    return int(found.group(1)) if found else 0
