"""The cost plan of a sweep, composed without running it (`python -m rerank_lora.plan`), one concern per module:

- cells.py:        the sweep's cells, expanded as Hydra's BasicSweeper expands them (the plan command composes each
                   as `run` would and hands it over as plain values);
- architecture.py: parameter counts and LoRA's projection shapes from the model config's architecture sizes;
- tokens.py:       tokens per training and scored pair, measured on the local data (or a stated proxy);
- workload.py:     optimizer steps, training pairs and tokens, evaluations and pairs scored of one cell;
- cost.py:         FLOPs of a cell and its time at a fraction of a device's peak;
- memory.py:       weights, LoRA + optimizer state and activations (with and without gradient checkpointing);
- calibrate.py:    this CPU's matmul rate and the model's measured fraction of it (device=cpu);
- planner.py:      one cell's plan from the above, tokenizers and token samples shared between cells;
- table.py:        the printed table, totals and assumptions.
"""
