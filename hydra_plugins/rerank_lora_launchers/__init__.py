"""rerank-lora's Hydra launchers: hydra-submitit-launcher's SLURM and local launchers, made to report every cell.

Hydra loads launchers only from the `hydra_plugins` namespace package: `config.py` registers
`hydra/launcher=rerank_slurm` and `rerank_local` (conf/hydra/launcher/slurm.yaml and local_gpus.yaml build on
them), `launchers.py` holds the classes, and `private_api.py` the private submitit and Hydra attributes they
use, checked at import.
"""
