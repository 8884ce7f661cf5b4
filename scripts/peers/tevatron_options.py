"""The options of Tevatron's reranker DataArguments that shape a pair's tokens, as command-line flags with Tevatron's
own defaults: the flags tevatron_inputs.py and tevatron_score.py share (imported beside them, in the peers' venv)."""

import argparse


def add_pair_options(parser: argparse.ArgumentParser):
    """--query-prefix, --passage-prefix, --rerank-max-len, --append-eos-token; returns Tevatron's DataArguments()."""
    from tevatron.reranker.arguments import DataArguments

    defaults = DataArguments()
    parser.add_argument("--query-prefix", default=defaults.query_prefix)
    parser.add_argument("--passage-prefix", default=defaults.passage_prefix)
    parser.add_argument("--rerank-max-len", type=int, default=defaults.rerank_max_len)
    parser.add_argument("--append-eos-token", action="store_true", default=defaults.append_eos_token)
    return defaults
