"""Wrap a backbone with peft LoRA on chosen projections and layers, checked against the model family."""

from dataclasses import dataclass

from peft import LoraConfig, get_peft_model

from rerank_lora.errors import InputError, check_int

MODULE_GROUPS = ("attn", "mlp", "all")


@dataclass(frozen=True)
class LoraSpec:
    """The `lora` config group: rank r, scaling alpha / r, dropout, and the layers adapted (None: all)."""

    rank: int = 8
    alpha: float = 16
    dropout: float = 0.1
    layers: list | None = None

    def __post_init__(self):
        check_int("lora.rank", self.rank, why="the paper uses 1, 2, 8, 32")
        if isinstance(self.alpha, bool) or not isinstance(self.alpha, int | float) or self.alpha <= 0:
            raise InputError(f"lora.alpha={self.alpha!r}; accepted: a number > 0 (the update is scaled by alpha / rank)")
        if isinstance(self.dropout, bool) or not isinstance(self.dropout, int | float) or not 0 <= self.dropout < 1:
            raise InputError(f"lora.dropout={self.dropout!r}; accepted: a number, 0 <= dropout < 1")


def target_modules(targets, modules_by_group: dict) -> list[str]:
    """Projection names for `targets`: a group name (attn | mlp | all) or an explicit list of projections."""
    known = list(modules_by_group["attn"]) + list(modules_by_group["mlp"])
    if isinstance(targets, str):
        if targets not in MODULE_GROUPS:
            raise InputError(
                f"targets.modules={targets!r}; accepted: {', '.join(MODULE_GROUPS)} or a list from {known}"
            )
        return known if targets == "all" else list(modules_by_group[targets])
    chosen = list(targets)
    unknown = [name for name in chosen if name not in known]
    if unknown or not chosen:
        raise InputError(
            f"targets.modules: {unknown or 'an empty list'} not projections of this model family; "
            f"accepted: {known} (or attn | mlp | all)"
        )
    return chosen


def check_layers(layers, num_layers: int) -> list[int] | None:
    if layers is None:
        return None
    layers = list(layers)
    bad = [layer for layer in layers if not isinstance(layer, int) or not 0 <= layer < num_layers]
    if bad or not layers:
        raise InputError(f"lora.layers: {bad or 'an empty list'} out of range; accepted: 0..{num_layers - 1}")
    return sorted(set(layers))


def add_lora(backbone, lora: LoraSpec, projections: list[str]):
    """The backbone wrapped as a PeftModel whose only trainable weights are the LoRA matrices on `projections`
    (from `target_modules`)."""
    config = LoraConfig(
        r=lora.rank,
        lora_alpha=lora.alpha,
        lora_dropout=lora.dropout,
        target_modules=projections,
        layers_to_transform=check_layers(lora.layers, backbone.config.num_hidden_layers),
        layers_pattern="layers" if lora.layers is not None else None,
    )
    return get_peft_model(backbone, config)


def base_model(backbone):
    """The transformers model under a peft wrapper (the backbone itself when it has none)."""
    return backbone.get_base_model() if hasattr(backbone, "get_base_model") else backbone
