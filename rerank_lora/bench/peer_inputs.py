"""The peers' inputs, drawn from our own data module so both sides see the same pairs: the training stream's groups
as texts in Tevatron's training JSONL rows, and the scored split's first-stage pairs as raw texts."""

import copy

from rerank_lora.data.datamodule import RerankDataModule, TrainGroups


class TextPairs:
    """An encoder for TrainGroups that keeps each pair's ((qid, query), (pid, passage)) instead of token ids."""

    def encode(self, queries: list[tuple[str, str]], passages: list[tuple[str, str]]) -> list[tuple]:
        return list(zip(queries, passages))


def group_texts(groups: TrainGroups, count: int) -> list[list[tuple]]:
    """The texts of the training stream's first `count` groups, drawn exactly as training draws them."""
    recorder = copy.copy(groups)
    recorder.encoder = TextPairs()
    return [recorder.group(k) for k in range(count)]


def tevatron_row(group: list[tuple]) -> dict:
    """One group (positive first) as a line of Tevatron's training JSONL (its reranker/dataset.py reads query,
    positive_passages and negative_passages, each passage's title and text). The shipped passages have no title."""
    (qid, query), _ = group[0]
    passages = [{"docid": pid, "title": "", "text": text} for _, (pid, text) in group]
    return {"query_id": qid, "query": query, "positive_passages": passages[:1], "negative_passages": passages[1:]}


def scoring_rows(data: RerankDataModule, split: str) -> list[dict]:
    """The pairs ours scores, in first-stage order, with their raw texts."""
    texts = data.collection
    return [
        {"qid": qid, "pid": pid, "query": texts.queries[qid], "passage": texts.corpus[pid]}
        for qid, scores in data.first_stage[split].items() for pid in scores
    ]
