"""Benchmarks, each a command: `speed` (the default model's scoring and training rates on this machine), `levers`
(those rates for each lever that changes cost), `peers` (ours beside Tevatron's trainer and FlagLLMReranker, run in
their own venv with what peer_inputs.py writes for them, by peer_process.py, tabled by peer_report.py)."""
