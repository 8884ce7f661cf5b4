"""Saving the workspace and report to a W&B server (needs the runs synced and an API key), or, offline, the
command that does it later."""

import netrc
import os
import shlex
from pathlib import Path
from urllib.parse import urlparse

import wandb_workspaces.reports.v2 as wr
import wandb_workspaces.workspaces as ws

DEFAULT_HOST = "https://api.wandb.ai"


def has_api_key() -> bool:
    """An API key in WANDB_API_KEY or in ~/.netrc for the W&B host, as `wandb login` stores it."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    host = urlparse(os.environ.get("WANDB_BASE_URL", DEFAULT_HOST)).hostname
    try:
        return netrc.netrc().authenticators(host) is not None
    except (FileNotFoundError, netrc.NetrcParseError):
        return False


def wanted(save) -> bool:
    """save=true: save; false: do not; null: save when an API key is set and W&B is not offline."""
    if save is not None:
        return bool(save)
    return has_api_key() and os.environ.get("WANDB_MODE", "online") not in ("offline", "disabled", "dryrun")


def save(workspace: ws.Workspace, report: wr.Report) -> list[str]:
    """Save both to the W&B server; their URLs."""
    workspace.save()
    report.save()
    return [workspace.url, report.url]


def later_command(folder: Path, entity: str, project: str) -> str:
    """Upload the sweep's offline runs, then save its dashboard."""
    runs = shlex.quote(str(folder)) + "/*/wandb/offline-run-*"
    entity_arg = f" entity={shlex.quote(entity)}" if entity else " entity=YOUR_ENTITY"
    return (
        f"wandb sync {runs} && python -m rerank_lora.dashboard sweep={shlex.quote(str(folder))}"
        f"{entity_arg} project={shlex.quote(project)} save=true"
    )


def default_entity() -> str:
    """The entity the API key belongs to, where entity= is not given."""
    import wandb

    return wandb.Api().default_entity or ""
