"""Analyses of a trained job without retraining: rebuilding it from a checkpoint (`trained_job`), switching
LoRA sites on and off (`lora_switch`), ablation variants and their engine (`variants`, `ablation`), layer-wise
probes (`probing`), the LoRA updates' statistics (`update_stats`), the tables' names (`outputs`) and their W&B
record (`wandb_tables`). The commands are rerank_lora.ablate, .probe and .adapter_stats."""
