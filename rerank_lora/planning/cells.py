"""The cells of a sweep, as `python -m rerank_lora.run -m` would launch them: the axes of the sweep config's
`hydra.sweeper.params` plus the command line's overrides, expanded by Hydra's BasicSweeper (a `key=a,b` on the
command line replaces that axis; `key=v` fixes it in every cell). The command (rerank_lora.plan) composes each
cell as `run` composes it and hands it here as plain values."""

import itertools
from dataclasses import dataclass
from pathlib import Path

from hydra.core.override_parser.overrides_parser import OverridesParser

from rerank_lora.configs import CONF_DIR
from rerank_lora.errors import InputError

FLAGS = ("--config-dir", "--config-name")
IGNORED = ("-m", "--multirun")


@dataclass(frozen=True)
class PlannedCell:
    overrides: list[str]  # the cell's own overrides, as its job folder name lists them
    config: dict  # its composed job config as plain values, resolved


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
