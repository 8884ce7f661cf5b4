"""OmegaConf resolvers used by conf/: where the shipped data lies, and a per-process run token."""

import uuid
from pathlib import Path

from omegaconf import OmegaConf

SHIPPED_DATA = Path(__file__).parent / "data"
# One token per process: two jobs started in the same second never share a folder.
RUN_TOKEN = uuid.uuid4().hex[:6]


def register() -> None:
    OmegaConf.register_new_resolver("shipped", lambda name: str(SHIPPED_DATA / name), replace=True)
    OmegaConf.register_new_resolver("run_token", lambda: RUN_TOKEN, replace=True)
