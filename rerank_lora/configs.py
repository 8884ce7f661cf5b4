"""Where the Hydra configs are, the OmegaConf resolvers they use, and composing a job's config outside `run`.

The configs live at the top of a checkout (`conf/`, `sweeps/`); `pip install .` copies them into the package
(`rerank_lora/conf`, `rerank_lora/sweeps`, see pyproject.toml), so both layouts are looked for.
"""

import hashlib
import uuid
from pathlib import Path

from hydra import compose, initialize_config_dir
from omegaconf import DictConfig, OmegaConf

from rerank_lora.job.spec import JobSpec, group_spec

PACKAGE = Path(__file__).resolve().parent
SHIPPED_DATA = PACKAGE / "data"
# One token per process: two jobs started in the same second never share a folder.
RUN_TOKEN = uuid.uuid4().hex[:6]


def _config_folder(name: str) -> Path:
    for folder in (PACKAGE.parent / name, PACKAGE / name):  # a checkout, then an installed package
        if folder.is_dir():
            return folder
    raise FileNotFoundError(f"rerank_lora: no {name}/ beside or inside {PACKAGE}; reinstall the package")


CONF_DIR = _config_folder("conf")
SWEEPS_DIR = _config_folder("sweeps")


def register_resolvers() -> None:
    OmegaConf.register_new_resolver("shipped", lambda name: str(SHIPPED_DATA / name), replace=True)
    OmegaConf.register_new_resolver("run_token", lambda: RUN_TOKEN, replace=True)
    OmegaConf.register_new_resolver("job_dirname", job_dirname, replace=True)


def job_dirname(number, overrides, limit: int = 200) -> str:
    """A grid cell's folder name, `<number>_<overrides>`; past `limit` bytes (file systems stop at 255) cut, with
    a hash of the whole name so two long names never meet."""
    name = f"{number}_{overrides}"
    if len(name.encode()) <= limit:
        return name
    digest = hashlib.sha1(name.encode()).hexdigest()[:10]
    return name.encode()[: limit - len(digest) - 1].decode(errors="ignore") + "~" + digest


def compose_job(overrides: list[str], config_name: str = "config", config_dir: Path = CONF_DIR) -> DictConfig:
    """A job's config as `run` would compose it, for the commands that read it without running the job.
    A sweep (config_dir=SWEEPS_DIR) also finds the job configs it builds on."""
    with initialize_config_dir(str(config_dir), version_base=None):
        overrides = list(overrides) + ([f"hydra.searchpath=[file://{CONF_DIR}]"] if config_dir != CONF_DIR else [])
        return compose(config_name, overrides=overrides)


def data_group_splits(name: str) -> dict:
    """data.splits of the data config group `name` as this checkout defines it (plain, resolved values; {} for a
    group without splits or that no longer exists): for a job saved before its group defined a split."""
    if not (CONF_DIR / "data" / f"{name}.yaml").is_file():
        return {}
    cfg = compose_job([f"data={name}"])
    return OmegaConf.to_container(cfg.data.get("splits") or {}, resolve=True)


def to_spec(cls, node, group: str):
    """The config group `group` (a DictConfig) as the dataclass `cls` whose fields mirror it: where config
    objects stop and library code takes plain arguments. Unknown keys get one error naming the accepted ones."""
    values = OmegaConf.to_container(node, resolve=True, throw_on_missing=True) if node is not None else {}
    return group_spec(cls, values, group)


def job_spec(cfg: DictConfig, precision: str | None = None) -> JobSpec:
    """A job's config as its specs (JobSpec.from_config); `precision`: a checkpoint's own, instead of
    trainer.precision resolved on this machine."""
    return JobSpec.from_config(OmegaConf.to_container(cfg, resolve=True, throw_on_missing=True), precision)


def schedule_choice(job_dir: Path) -> str:
    """The schedule config group a finished job was composed with, from its .hydra/hydra.yaml."""
    path = job_dir / ".hydra" / "hydra.yaml"
    choices = OmegaConf.select(OmegaConf.load(path), "hydra.runtime.choices") if path.is_file() else None
    return str((choices or {}).get("schedule", "custom"))


def saved_config(path: Path, resolve: bool = True) -> dict | list:
    """A config file a job saved (its .hydra/config.yaml, or overrides.yaml; or a config group's file in conf/) as
    plain values, its interpolations (${shipped:...}, ${cache_dir}, ...) resolved with this project's resolvers
    unless `resolve` is false: how code below the commands reads a finished job's config."""
    return OmegaConf.to_container(OmegaConf.load(path), resolve=resolve)


def default_job_yaml(values: dict) -> str:
    """The default job's config (composed as `run` composes it without overrides) with `values` set (a dotted key,
    `lora.rank`, or a whole group, `model`, whose strings may interpolate: `${cache_dir}`), as the resolved YAML a
    job saves in .hydra/config.yaml: for a job folder made without running a job (an imported adapter's)."""
    cfg = compose_job([])
    OmegaConf.set_struct(cfg, False)
    for key, value in values.items():
        OmegaConf.update(cfg, key, value, merge=False)
    return OmegaConf.to_yaml(cfg, resolve=True)
