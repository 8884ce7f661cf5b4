"""rerank-lora: LoRA-fine-tuned LLM passage rerankers, checkpointed and evaluated on TREC judgments."""

from rerank_lora import resolvers

resolvers.register()
