"""The one command-line convention of every tool: `python -m rerank_lora.<tool> key=value ...` (or the
`rerank-lora-<tool>` script). Values follow OmegaConf's dotlist (`a=1 b.c=[x,y]`); a tool reads either its
own keys (`parse_args`, checked against its defaults) or Hydra overrides of the job config as `rerank_lora.run`
takes them (`parse_job_overrides`; `--config-dir DIR --config-name NAME` choose a sweep). Bad input is one
`error: ...` line on stderr and exit status 1; files written are printed as `wrote PATH`, results as JSON.
"""

import json
import logging
import sys
from collections.abc import Callable
from pathlib import Path

from hydra.errors import HydraException
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import ConfigKeyError, OmegaConfBaseException

from rerank_lora.configs import CONF_DIR, compose_job
from rerank_lora.errors import InputError


def _keys(node, prefix: str = "") -> list[str]:
    keys = []
    for key, value in node.items():
        if isinstance(value, dict):
            keys.extend(_keys(value, f"{prefix}{key}."))
        else:
            keys.append(f"{prefix}{key}")
    return keys


def parse_args(args: list[str], defaults: dict, required: tuple[str, ...] = ()) -> DictConfig:
    """The defaults overridden by `args`; unknown keys, malformed arguments and missing required keys raise
    InputError naming the accepted keys."""
    accepted = ", ".join(_keys(defaults))
    malformed = [a for a in args if "=" not in a]
    if malformed:
        raise InputError(f"arguments are key=value; got {malformed}; accepted keys: {accepted}")
    base = OmegaConf.create(defaults)
    OmegaConf.set_struct(base, True)
    try:
        cfg = OmegaConf.merge(base, OmegaConf.from_dotlist(args))
    except ConfigKeyError as err:
        raise InputError(f"unknown argument {err.full_key!r}; accepted keys: {accepted}") from None
    except OmegaConfBaseException as err:
        raise InputError(f"bad argument: {str(err).splitlines()[0]}; accepted keys: {accepted}") from None
    groups = [key for key, value in defaults.items() if isinstance(value, dict) and not isinstance(cfg[key], DictConfig)]
    if groups:  # OmegaConf lets a value replace a whole group
        raise InputError(f"{groups[0]} is a group of options; set {', '.join(_keys({groups[0]: defaults[groups[0]]}))}")
    missing = [key for key in required if OmegaConf.is_missing(cfg, key)]
    if missing:
        raise InputError(f"missing {', '.join(f'{k}=...' for k in missing)}")
    return cfg


def parse_job_overrides(args: list[str]) -> DictConfig:
    """The job config composed with Hydra overrides, as `run` composes it (`--config-dir/--config-name` too)."""
    options = {"--config-dir": str(CONF_DIR), "--config-name": "config"}
    overrides = []
    words = iter(args)
    for word in words:
        flag, _, value = word.partition("=")
        if flag in options:
            options[flag] = value or next(words, "")
        else:
            overrides.append(word)
    folder = Path(options["--config-dir"]).expanduser().resolve()
    try:
        return compose_job(overrides, options["--config-name"], folder)
    except (HydraException, OmegaConfBaseException) as err:
        raise InputError(str(err).strip().splitlines()[0]) from None


def as_list(value) -> list:
    """A config value that may be one item or a list, as a list."""
    if value is None:
        return []
    return [value] if isinstance(value, str | int | float) else list(value)


def main(tool: Callable[[list[str]], object]) -> None:
    """Run `tool` on this process's arguments and print what it returns: paths as `wrote PATH`, a dict as
    JSON; bad input as one `error: ...` line and exit status 1."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    try:
        result = tool(sys.argv[1:])
    except InputError as err:
        raise SystemExit(f"error: {err}") from None
    if isinstance(result, dict):
        print(json.dumps(result, indent=2, default=lambda v: round(v, 4) if isinstance(v, float) else str(v)))
    elif result is not None:
        for path in result if isinstance(result, list) else [result]:
            print(f"wrote {path}")
