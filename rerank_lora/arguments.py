"""`key=value` command-line arguments against a dict of defaults, with one clear error for anything unknown."""

import logging
import sys
from collections.abc import Callable
from pathlib import Path

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import ConfigKeyError, OmegaConfBaseException

from rerank_lora.errors import InputError


def _keys(node, prefix: str = "") -> list[str]:
    keys = []
    for key, value in node.items():
        keys.append(f"{prefix}{key}")
        if isinstance(value, dict):
            keys.extend(_keys(value, f"{prefix}{key}."))
    return keys


def parse_args(args: list[str], defaults: dict, required: tuple[str, ...] = ()) -> DictConfig:
    """The defaults overridden by `args` (OmegaConf dotlist: `a=1 b.c=[x,y]`); unknown keys, malformed
    arguments and missing required keys raise InputError naming the accepted keys."""
    accepted = ", ".join(
        k for k in _keys(defaults) if not isinstance(OmegaConf.select(OmegaConf.create(defaults), k), DictConfig)
    )
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
    missing = [key for key in required if OmegaConf.is_missing(cfg, key)]
    if missing:
        raise InputError(f"missing {', '.join(f'{k}=...' for k in missing)}")
    return cfg


def as_list(value) -> list:
    """A config value that may be one item or a list, as a list."""
    if value is None:
        return []
    return [value] if isinstance(value, str | int | float) else list(value)


def run_tool(tool: Callable[[list[str]], list[Path]]) -> None:
    """The command line of a tool that writes tables: its arguments in, the files it wrote out, and bad
    input as one `error: ...` line with a non-zero exit."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    try:
        for path in tool(sys.argv[1:]):
            print(f"wrote {path}")
    except InputError as err:
        raise SystemExit(f"error: {err}") from None
