"""What `make bench-peers` hands the peers (Tevatron, FlagLLMReranker) and how it runs them in their own venv."""
