"""The attention-feature engine (Perlman, Nijasure, Allan; Chen, Zhuang et al. 2026; Lu, Chen, Eickhoff 2025):
where the scoring token looks, per layer and head, at one checkpoint.

For each pair, the read token's attention (model/read_position.py, the token the head scores) in every layer and
head, the first (sink) token set apart: `sink` is its share of the whole; `query`, `passage` and `other` (the
template's own tokens) share the rest. Over the passage's tokens, the attention's Pearson correlation with each
token's IDF in the job's corpus (`idf_corr`: term rarity) and with exact query-term match (`match_corr`). Each value
is averaged over a query's pairs, then over queries; the correlations are tested against zero over the queries
(one-sample t-test, Holm-corrected over every layer and head). Attention weights need eager attention: it is
switched on while the features are computed and back afterwards."""

import logging
import math
import time
from contextlib import contextmanager, nullcontext

import torch
from scipy import stats

from rerank_lora.analysis.lora_switch import LoraSwitch
from rerank_lora.analysis.query_sample import only_queries, sample_queries
from rerank_lora.analysis.token_roles import PairRoles, pair_roles, query_term_matches, token_idf
from rerank_lora.analysis.trained_job import TrainedJob
from rerank_lora.errors import InputError
from rerank_lora.evaluation.significance import holm
from rerank_lora.model.lora import base_model

log = logging.getLogger(__name__)
SHARES = ("sink", "query", "passage", "other")
CORRELATIONS = ("idf_corr", "match_corr")


@contextmanager
def eager_attention(backbone):
    """The backbone with transformers' eager attention (the one that returns its weights), then as it was."""
    model = base_model(backbone)
    before = model.config._attn_implementation
    model.set_attn_implementation("eager")
    try:
        yield
    finally:
        model.set_attn_implementation(before)


@torch.no_grad()
def read_attention(reranker, inputs: dict, device) -> torch.Tensor:
    """[layers, pairs, heads, tokens] float32: each pair's read token's attention weights."""
    ids, mask = inputs["input_ids"].to(device), inputs["attention_mask"].to(device)
    with reranker.autocast():
        out = reranker.backbone(input_ids=ids, attention_mask=mask, use_cache=False, output_attentions=True)
    rows, read = torch.arange(ids.size(0), device=device), reranker.read.index(ids, mask)
    return torch.stack([layer[rows, :, read].float() for layer in out.attentions]).cpu()


def pearson(values: torch.Tensor, against: torch.Tensor) -> torch.Tensor:
    """Pearson's r of each row of `values` [..., n] with `against` [n]; NaN where either is constant."""
    x = values - values.mean(-1, keepdim=True)
    y = against - against.mean()
    spread = (x.square().sum(-1) * y.square().sum()).sqrt()
    r = (x * y).sum(-1) / spread
    return torch.where(spread > 1e-12, r, torch.full_like(r, math.nan))


def pair_features(attention: torch.Tensor, roles: PairRoles, idf: torch.Tensor, matches: torch.Tensor) -> dict:
    """[layers, heads] of each feature for one pair, from its read token's attention [layers, heads, tokens]."""
    rest = attention[..., 1:].sum(-1).clamp_min(1e-12)
    query = attention[..., list(roles.query)].sum(-1) / rest
    passage_attention = attention[..., list(roles.passage)]
    passage = passage_attention.sum(-1) / rest
    return {
        "sink": attention[..., 0],
        "query": query,
        "passage": passage,
        "other": 1 - query - passage,
        "idf_corr": pearson(passage_attention, idf),
        "match_corr": pearson(passage_attention, matches),
    }


class AttentionFeatures:
    """The features of the job's current checkpoint on `split` (a seeded sample of `queries` of its queries, None:
    every one); `merge` folds LoRA into the weights while computing (restored exactly)."""

    def __init__(self, job: TrainedJob, split: str, merge: bool = True, queries: int | None = None):
        self.job, self.split, self.merge = job, split, merge
        self.switch = LoraSwitch(job.reranker.backbone)
        self.tokenizer = job.tokenizer
        self.texts = job.data.collection
        self.idf = token_idf(self.tokenizer, self.texts.corpus.values())
        self.unseen_idf = math.log(max(len(self.texts.corpus), 1))  # a token no passage holds: as rare as df = 1
        self._roles: dict[tuple[str, str], tuple | None] = {}  # by (qid, pid): see _token_roles
        chosen = sample_queries(job.data.first_stage[split], queries, job.seed)
        batches = job.data.eval_batches(split)
        self.batches = batches if chosen is None else only_queries(batches, chosen)

    def rows(self) -> list[dict]:
        """One row per layer and head: the features' means over queries, and the correlations' p-values."""
        started = time.perf_counter()
        by_query, pairs, skipped = self._by_query()
        if not by_query:
            raise InputError(f"split={self.split}: no pair whose query and passage tokens could be found in its input")
        # each feature [queries, layers, heads]: a query's pairs averaged first, so every query weighs the same
        means = {f: torch.stack([torch.stack(values).nanmean(0) for values in by_query[f]]) for f in SHARES + CORRELATIONS}
        p_values = {f: self._p_values(means[f]) for f in CORRELATIONS}
        layers, heads = means["sink"].shape[1:]
        log.info("step %s: attention features of %d pairs (%d skipped: text not found) in %.1f s",
                 self.job.step, pairs, skipped, time.perf_counter() - started)
        head = {"step": self.job.step, "split": self.split, "depth": self.job.depth_of(self.split),
                "queries": means["sink"].size(0), "pairs": pairs}
        rows = []
        for layer in range(layers):
            for h in range(heads):
                row = {**head, "layer": layer, "head": h}
                for f in SHARES + CORRELATIONS:
                    row[f] = _number(means[f][:, layer, h].nanmean())
                    if f in CORRELATIONS:
                        row[f"p_{f}"] = p_values[f][layer * heads + h]
                rows.append(row)
        return rows

    def _by_query(self) -> tuple[dict, int, int]:
        """{feature: {qid: [[layers, heads] per pair]}}, the pairs measured and the pairs skipped."""
        found: dict = {f: {} for f in SHARES + CORRELATIONS}
        pairs = skipped = 0
        self.job.reranker.eval()
        merged = self.switch.merged() if self.merge else nullcontext()
        with self.switch.only(self.switch.sites), merged, eager_attention(self.job.reranker.backbone):
            for batch in self.batches:
                attention = read_attention(self.job.reranker, batch.inputs, self.job.device)
                lengths = batch.inputs["attention_mask"].sum(1).tolist()
                for i, (qid, pid) in enumerate(zip(batch.qids, batch.pids)):
                    ids = batch.inputs["input_ids"][i, : lengths[i]].tolist()
                    features = self._pair(attention[:, i, :, : lengths[i]], ids, qid, pid)
                    if features is None:
                        skipped += 1
                        continue
                    pairs += 1
                    for f, value in features.items():
                        found[f].setdefault(qid, []).append(value)
        return {f: list(v.values()) for f, v in found.items()}, pairs, skipped

    def _pair(self, attention: torch.Tensor, ids: list[int], qid: str, pid: str) -> dict | None:
        found = self._token_roles(ids, qid, pid)
        return None if found is None else pair_features(attention, *found)

    def _token_roles(self, ids: list[int], qid: str, pid: str) -> tuple | None:
        """The pair's roles (the sink apart), its passage tokens' IDF and query-term matches, found once: they do
        not change between checkpoints."""
        if (qid, pid) not in self._roles:
            self._roles[qid, pid] = self._find_roles(ids, qid, pid)
        return self._roles[qid, pid]

    def _find_roles(self, ids: list[int], qid: str, pid: str) -> tuple | None:
        roles = pair_roles(self.tokenizer, ids, self.texts.queries[qid], self.texts.corpus[pid])
        if roles is None:
            return None
        roles = PairRoles(range(max(roles.query.start, 1), roles.query.stop), roles.passage)  # the sink apart
        idf = torch.tensor([self.idf.get(ids[i], self.unseen_idf) for i in roles.passage])
        matches = torch.tensor(query_term_matches(self.tokenizer, ids, roles), dtype=torch.float32)
        return roles, idf, matches

    @staticmethod
    def _p_values(values: torch.Tensor) -> list[float]:
        """Holm-corrected p of a one-sample t-test against 0 over queries, for each layer and head in order."""
        flat = values.flatten(1).T  # [layers x heads, queries]
        raw = []
        for row in flat.tolist():
            kept = [v for v in row if not math.isnan(v)]
            raw.append(float(stats.ttest_1samp(kept, 0.0).pvalue) if len(kept) > 1 else math.nan)
        return holm(raw)


def _number(value: torch.Tensor) -> float | None:
    number = float(value)
    return None if math.isnan(number) else number
