"""rerank-lora: LoRA-fine-tuned LLM passage rerankers, checkpointed and evaluated on TREC judgments."""

from rerank_lora import configs

configs.register_resolvers()
