"""Every option of every config group composes, resolves, and builds what it names (no model weights needed)."""

import itertools

import pytest
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from omegaconf import OmegaConf

from rerank_lora.configs import CONF_DIR, SWEEPS_DIR, compose_job, job_spec, to_spec
from rerank_lora.data.spec import DataSpec
from rerank_lora.evaluation.metrics import check_split_cutoffs, parse_measures
from rerank_lora.model.backbone import ModelSpec
from rerank_lora.model.lora import LoraSpec
from rerank_lora.model.reranker import Optim
from rerank_lora.train.schedule import checkpoint_steps
from rerank_lora.train.trainer import make_trainer

GROUPS = sorted(p.name for p in CONF_DIR.iterdir() if p.is_dir() and p.name != "hydra")
TREC_PATHS = ["data.corpus=c.jsonl", "data.queries=q.tsv", "data.qrels=qrels.txt", "data.candidates=run.trec"]


def options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF_DIR / group).glob("*.yaml"))


def composed(overrides: list[str]):
    return compose_job(overrides)


@pytest.mark.parametrize("group,option", [(g, o) for g in GROUPS for o in options(g)])
def test_every_option_composes_and_resolves(group, option):
    extra = TREC_PATHS if (group, option) == ("data", "trec") else []
    cfg = composed([f"{group}={option}", *extra])
    resolved = OmegaConf.to_container(cfg, resolve=True, throw_on_missing=True)
    assert resolved[group] is None or isinstance(resolved[group], dict)
    assert checkpoint_steps(cfg.trainer.max_steps, **cfg.schedule)[0] == 0
    assert len(parse_measures(cfg.measures)) == len(cfg.measures)
    assert_measures_fit_depths(cfg)
    # each group becomes the dataclass of the code it configures, with no key left over
    for cls, group in [(ModelSpec, "model"), (DataSpec, "data"), (LoraSpec, "lora"), (Optim, "optim")]:
        assert isinstance(to_spec(cls, cfg[group], group), cls)


@pytest.mark.parametrize("option", options("model"))
def test_every_model_names_its_family_projections(option):
    model = composed([f"model={option}"]).model
    assert model.source in {"gguf", "hub", "tiny"} and model.family in {"llama", "mistral", "gpt_neox"}
    assert model.modules.attn and model.modules.mlp and not set(model.modules.attn) & set(model.modules.mlp)


@pytest.mark.parametrize("option", options("trainer"))
def test_every_trainer_instantiates(option, tmp_path):
    """GPU options are checked here on the CPU: the same settings, another accelerator."""
    cfg = composed([f"trainer={option}", "trainer.accelerator=cpu"])
    trainer = make_trainer(job_spec(cfg).trainer, False, [], tmp_path)
    assert trainer.max_steps > 0
    if option in ("gpu", "ddp"):
        assert cfg.trainer.precision == "bf16-mixed" and cfg.trainer.gradient_checkpointing
        assert cfg.model.attn_implementation == "sdpa"
    if option == "ddp":
        assert type(trainer.strategy).__name__ == "DDPStrategy"


@pytest.mark.parametrize("option", ["csv", "wandb"])
def test_loggers_instantiate_offline(option, tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    logger = instantiate(composed([f"logger={option}"]).logger, save_dir=str(tmp_path))
    assert logger.save_dir == str(tmp_path)


@pytest.mark.parametrize("sweep", sorted(p.stem for p in SWEEPS_DIR.glob("*.yaml")))
def test_every_sweep_composes_and_every_cell_resolves(sweep):
    """Each grid in sweeps/ builds on the job configs; every cell of its axes composes into valid specs."""
    with initialize_config_dir(str(SWEEPS_DIR), version_base=None):
        grid = compose(sweep, overrides=[f"hydra.searchpath=[file://{CONF_DIR}]"], return_hydra_config=True)
    axes = {key: str(values).split(",") for key, values in grid.hydra.sweeper.params.items()}
    assert {"model", "lora.rank", "targets"} <= set(axes)
    for values in itertools.product(*axes.values()):
        cfg = compose_job([f"{k}={v}" for k, v in zip(axes, values)], sweep, SWEEPS_DIR)
        OmegaConf.to_container(cfg, resolve=True, throw_on_missing=True)
        assert to_spec(ModelSpec, cfg.model, "model").name == values[list(axes).index("model")]
        assert checkpoint_steps(cfg.trainer.max_steps, **cfg.schedule)[0] == 0
        assert_measures_fit_depths(cfg)
    if sweep == "paper":  # reranked to depth 100: the deeper measures are kept
        assert {"nDCG@20", "AP(rel=2)@100"} <= set(cfg.measures)


def assert_measures_fit_depths(cfg) -> None:
    """No measure of the config is cut deeper than a split it evaluates is reranked (the job would refuse it)."""
    spec = to_spec(DataSpec, cfg.data, "data")
    check_split_cutoffs(cfg.measures, spec, [*spec.eval_splits, *spec.held_out_splits])


def test_a_grid_cell_folder_name_past_200_bytes_is_cut_with_a_hash_of_the_whole():
    from rerank_lora.configs import job_dirname

    assert job_dirname(3, "lora.rank=2,targets=attn") == "3_lora.rank=2,targets=attn"
    long = ",".join(f"data.splits.s{i}.files=/a/long/path/to/split/{i}" for i in range(20))
    name = job_dirname(3, long)
    assert len(name.encode()) <= 200 and name.startswith("3_data.splits.s0.files=")
    assert name != job_dirname(3, long[:-1] + "x")  # names that differ only past the cut stay apart
