"""The cells of a sweep, as `python -m rerank_lora.run -m` would launch them: the axes of the sweep config's
`hydra.sweeper.params` plus the command line's overrides, expanded by Hydra's BasicSweeper (a `key=a,b` on the
command line replaces that axis; `key=v` fixes it in every cell), each cell composed as `run` composes it."""

import itertools
from dataclasses import dataclass
from pathlib import Path

from hydra import compose, initialize_config_dir
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import HydraException
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from rerank_lora.configs import CONF_DIR, compose_job
from rerank_lora.errors import InputError

FLAGS = ("--config-dir", "--config-name")
IGNORED = ("-m", "--multirun")


@dataclass(frozen=True)
class Cell:
    overrides: list[str]  # the cell's own overrides, as its job folder name lists them
    cfg: DictConfig  # its composed job config

    def value(self, key: str, default=None):
        return OmegaConf.select(self.cfg, key, default=default)


def split_flags(args: list[str]) -> tuple[Path, str, list[str]]:
    """`--config-dir DIR --config-name NAME` (or FLAG=VALUE) apart from the overrides, as cli.parse_job_overrides
    reads them; `-m` is accepted and ignored."""
    options, overrides, words = {"--config-dir": str(CONF_DIR), "--config-name": "config"}, [], iter(args)
    for word in words:
        flag, _, value = word.partition("=")
        if flag in FLAGS:
            options[flag] = value or next(words, "")
        elif word not in IGNORED:
            overrides.append(word)
    return Path(options["--config-dir"]).expanduser().resolve(), options["--config-name"], overrides


def sweep_axes(config_dir: Path, config_name: str) -> list[str]:
    """The sweep config's hydra.sweeper.params as `key=a,b` overrides (none for a plain job config)."""
    search = [f"hydra.searchpath=[file://{CONF_DIR}]"] if config_dir != CONF_DIR else []
    with initialize_config_dir(str(config_dir), version_base=None):
        cfg = compose(config_name, overrides=search, return_hydra_config=True)
    params = OmegaConf.select(cfg, "hydra.sweeper.params") or {}
    return [f"{key}={value}" for key, value in params.items()]


def expand(axes: list[str], overrides: list[str]) -> list[list[str]]:
    """Every cell's overrides, as BasicSweeper.split_arguments makes them: one list of choices per key (a later
    one, the command line's, replacing an earlier one, the sweep's), crossed in the order the keys first came."""
    choices: dict[str, list[str]] = {}
    for override in OverridesParser.create().parse_overrides(axes + overrides):
        key = override.get_key_element()
        if not override.is_sweep_override():
            choices[key] = [f"{key}={override.get_value_element_as_str()}"]
        elif override.is_discrete_sweep():
            choices[key] = [f"{key}={value}" for value in override.sweep_string_iterator()]
        else:
            raise InputError(f"{key}: Hydra's basic sweeper takes lists of values (a,b,c), not {override.value_type.name}")
    return [list(cell) for cell in itertools.product(*choices.values())]


def sweep_cells(args: list[str]) -> list[Cell]:
    """The composed cells of the sweep that `args` (run's arguments, -m implied) would launch."""
    config_dir, config_name, overrides = split_flags(args)
    if not (config_dir / f"{config_name}.yaml").is_file():
        raise InputError(f"--config-name {config_name}: no {config_name}.yaml in {config_dir}")
    try:
        cells = expand(sweep_axes(config_dir, config_name), overrides)
        return [Cell(cell, compose_job(cell, config_name, config_dir)) for cell in cells]
    except (HydraException, OmegaConfBaseException) as err:
        raise InputError(str(err).strip().splitlines()[0]) from None
