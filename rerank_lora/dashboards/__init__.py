"""A sweep's W&B dashboard, made by the project: the key names the runs are logged under (`keys.py`), the
workspace and report built with wandb-workspaces (`workspace.py`, `report.py`), their spec files (`spec.py`), and
the sweep's offline runs read back with wandb's own reader (`logged_runs.py`). The command is
rerank_lora.dashboard."""
