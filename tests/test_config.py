"""Every option of every config group composes, resolves, and builds what it names (no model weights needed)."""

import pytest
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from omegaconf import OmegaConf

from rerank_lora.metrics import parse_measures
from rerank_lora.run import CONF_DIR
from rerank_lora.schedule import checkpoint_steps

GROUPS = sorted(p.name for p in CONF_DIR.iterdir() if p.is_dir() and p.name != "hydra")
TREC_PATHS = ["data.corpus=c.jsonl", "data.queries=q.tsv", "data.qrels=qrels.txt", "data.candidates=run.trec"]


def options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF_DIR / group).glob("*.yaml"))


def composed(overrides: list[str]):
    with initialize_config_dir(str(CONF_DIR), version_base=None):
        return compose("config", overrides=overrides)


@pytest.mark.parametrize("group,option", [(g, o) for g in GROUPS for o in options(g)])
def test_every_option_composes_and_resolves(group, option):
    extra = TREC_PATHS if (group, option) == ("data", "trec") else []
    cfg = composed([f"{group}={option}", *extra])
    resolved = OmegaConf.to_container(cfg, resolve=True, throw_on_missing=True)
    assert resolved[group] is None or isinstance(resolved[group], dict)
    assert checkpoint_steps(cfg.schedule, cfg.trainer.max_steps)[0] == 0
    assert len(parse_measures(cfg.measures)) == len(cfg.measures)


@pytest.mark.parametrize("option", options("model"))
def test_every_model_names_its_family_projections(option):
    model = composed([f"model={option}"]).model
    assert model.source in {"gguf", "hub", "tiny"} and model.family in {"llama", "mistral", "gpt_neox"}
    assert model.modules.attn and model.modules.mlp and not set(model.modules.attn) & set(model.modules.mlp)


@pytest.mark.parametrize("option", options("trainer"))
def test_every_trainer_instantiates(option):
    """GPU options are checked here on the CPU: the same settings, another accelerator."""
    cfg = composed([f"trainer={option}", "trainer.accelerator=cpu"])
    trainer = instantiate(cfg.trainer, logger=False)
    assert trainer.max_steps > 0
    if option in ("gpu", "ddp"):
        assert cfg.trainer.precision == "bf16-mixed" and cfg.model.gradient_checkpointing
        assert cfg.model.attn_implementation == "sdpa"
    if option == "ddp":
        assert type(trainer.strategy).__name__ == "DDPStrategy"


@pytest.mark.parametrize("option", ["csv", "wandb"])
def test_loggers_instantiate_offline(option, tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    logger = instantiate(composed([f"logger={option}"]).logger, save_dir=str(tmp_path))
    assert logger.save_dir == str(tmp_path)
