"""`hydra/launcher=rerank_slurm|rerank_local`: hydra-submitit-launcher's options, with our launcher classes."""

from dataclasses import dataclass

from hydra.core.config_store import ConfigStore
from hydra_plugins.hydra_submitit_launcher.config import LocalQueueConf, SlurmQueueConf


@dataclass
class RerankSlurmQueueConf(SlurmQueueConf):
    _target_: str = "hydra_plugins.rerank_lora_launchers.launchers.SlurmLauncher"


@dataclass
class RerankLocalQueueConf(LocalQueueConf):
    _target_: str = "hydra_plugins.rerank_lora_launchers.launchers.LocalLauncher"
    # shell lines run before each job's process (submitit's local executor takes them as `local_setup`)
    setup: list[str] | None = None


ConfigStore.instance().store(group="hydra/launcher", name="rerank_slurm", node=RerankSlurmQueueConf, provider="rerank_lora")
ConfigStore.instance().store(group="hydra/launcher", name="rerank_local", node=RerankLocalQueueConf, provider="rerank_lora")
