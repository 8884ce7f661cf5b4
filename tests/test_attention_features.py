"""Attention features: the query's and the passage's tokens found in every template's input, IDF and query-term match
as defined, the shares and correlations of a hand-made attention row computed by hand, and on a tiny trained job the
command's table at every checkpoint, the model unchanged afterwards, the report's section, and bad input."""

import math
import sys

import numpy as np
import pytest
import torch
from test_templates import bos_pairs, tiny, tokenizer  # noqa: F401  (fixtures)

from rerank_lora import attention, report
from rerank_lora.analysis.attention_features import AttentionFeatures, pair_features, pearson
from rerank_lora.analysis.token_roles import PairRoles, pair_roles, query_term_matches, token_idf
from rerank_lora.analysis.trained_job import TrainedJob
from rerank_lora.data.pairs import TemplateOptions, pair_encoder
from rerank_lora.job_folder import JobFolder
from rerank_lora.model.lora import base_model
from rerank_lora.tables import read_csv

QUERY = "what does a cat hunt"
PASSAGES = [("p1", "Cats hunt mice at night, and a cat will hunt birds too. " * 12), ("p2", "Dogs bark.")]
TEMPLATES = {
    "rerank_lora": None,
    "tevatron": TemplateOptions(),
    "tevatron, prefixes and EOS": TemplateOptions("query: ", "document: ", True),
    "rankllama_v1": None,
}


@pytest.mark.parametrize("pair_rule", ["own", "llama-like"])
@pytest.mark.parametrize("name", list(TEMPLATES))
def test_the_query_and_the_passage_are_found_in_every_templates_input(tokenizer, bos_pairs, name, pair_rule):  # noqa: F811
    chosen = tokenizer if pair_rule == "own" else bos_pairs
    template = name.split(",")[0]
    encoder = pair_encoder(chosen, 64, template, options=TEMPLATES[name])
    for (pid, text), ids in zip(PASSAGES, encoder.encode([("q", QUERY)] * 2, PASSAGES)):
        roles = pair_roles(chosen, ids, QUERY, text)
        assert roles is not None and roles.query.stop <= roles.passage.start
        assert chosen.decode(ids[roles.query.start : roles.query.stop]).strip() == QUERY
        found = chosen.decode(ids[roles.passage.start : roles.passage.stop]).strip()
        assert found == text.strip() if pid == "p2" else (text.startswith(found) and len(found) > 40)  # p1: cut
    assert pair_roles(tokenizer, tokenizer("nothing alike here")["input_ids"], QUERY, "Dogs bark.") is None


def test_idf_and_query_term_match_are_as_defined(tokenizer):  # noqa: F811
    texts = ["cat dog", "cat", "cat fish"]
    idf = token_idf(tokenizer, texts)
    cat, fish = (tokenizer(w, add_special_tokens=False)["input_ids"][0] for w in ("cat", " fish"))
    assert idf[cat] == 0.0 and idf[fish] == pytest.approx(math.log(3))
    ids = pair_encoder(tokenizer, 64, "tevatron").encode([("q", "Cat food")], [("p", "a cat eats food, CAT")])[0]
    roles = pair_roles(tokenizer, ids, "Cat food", "a cat eats food, CAT")
    terms = [tokenizer.decode([ids[i]]).strip().lower() for i in roles.passage]
    expected = [t in ("cat", "food") for t in terms]
    assert query_term_matches(tokenizer, ids, roles) == expected and sum(expected) == 3


def test_shares_and_correlations_of_a_hand_made_attention_row():
    weights = torch.tensor([0.4, 0.1, 0.05, 0.05, 0.2, 0.1, 0.1])  # sink, query x2, other, passage x3
    attention = torch.stack([weights, torch.tensor([0.0, 0.2, 0.2, 0.0, 0.2, 0.2, 0.2])])[None]  # [1 layer, 2 heads, 7]
    roles = PairRoles(range(1, 3), range(4, 7))
    idf, matches = torch.tensor([1.0, 3.0, 2.0]), torch.tensor([1.0, 0.0, 0.0])
    f = pair_features(attention, roles, idf, matches)
    assert f["sink"][0, 0] == pytest.approx(0.4) and f["query"][0, 0] == pytest.approx(0.15 / 0.6)
    assert f["passage"][0, 0] == pytest.approx(0.4 / 0.6) and f["other"][0, 0] == pytest.approx(0.05 / 0.6)
    assert f["idf_corr"][0, 0] == pytest.approx(np.corrcoef([0.2, 0.1, 0.1], [1, 3, 2])[0, 1], abs=1e-6)
    assert f["match_corr"][0, 0] == pytest.approx(np.corrcoef([0.2, 0.1, 0.1], [1, 0, 0])[0, 1], abs=1e-6)
    assert math.isnan(f["idf_corr"][0, 1]) and math.isnan(pearson(torch.ones(1, 3), idf)[0])  # constant attention


def scores(job: TrainedJob) -> torch.Tensor:
    batch = job.data.eval_batches("dev")[0].inputs
    with torch.no_grad(), job.reranker.autocast():
        return job.reranker(batch["input_ids"], batch["attention_mask"])


def test_features_on_a_trained_job_leave_the_model_as_it_was(trained_tiny_job):
    job = TrainedJob(JobFolder(trained_tiny_job).checkpoint(4), ["dev"])
    before, implementation = scores(job), base_model(job.reranker.backbone).config._attn_implementation
    rows = AttentionFeatures(job, "dev", queries=6).rows()
    assert base_model(job.reranker.backbone).config._attn_implementation == implementation == "sdpa"
    assert torch.equal(scores(job), before)
    assert [(r["layer"], r["head"]) for r in rows] == [(x, h) for x in range(2) for h in range(4)]
    for r in rows:
        assert r["queries"] == 6 and r["pairs"] == 60 and 0 <= r["sink"] <= 1
        assert r["query"] + r["passage"] + r["other"] == pytest.approx(1, abs=1e-5)
        assert r["query"] > 0 and r["passage"] > 0
        assert all(r[f] is None or -1 <= r[f] <= 1 for f in ("idf_corr", "match_corr"))
        assert all(r[p] is None or 0 <= r[p] <= 1 for p in ("p_idf_corr", "p_match_corr"))


def test_the_command_writes_every_checkpoint_and_the_report_draws_them(trained_tiny_job, tmp_path):
    written = attention.attention([f"checkpoint={trained_tiny_job}", "queries=4", "logger=none"])
    try:
        assert [p.parent for p in written] == [JobFolder(trained_tiny_job).checkpoint(s) for s in (0, 2, 4)]
        first, last = read_csv(written[0]), read_csv(written[-1])
        assert [r["step"] for r in first] == [0] * 8 and [r["step"] for r in last] == [4] * 8
        assert [r["passage"] for r in first] != [r["passage"] for r in last]  # the adapter changed where it looks
        page = report.report([f"sweep={trained_tiny_job}", f"out={tmp_path / 'report.html'}"]).read_text()
    finally:
        for path in written:
            path.unlink()
    assert 'alt="attention share heat maps"' in page and 'alt="attention correlation heat maps"' in page
    table = page.split('id="attention-table"')[1].split("</table>")[0]
    assert table.count("<tr") == 1 + 3 * 2 * 3  # header; 3 checkpoints x 2 correlations x 3 heads


@pytest.mark.parametrize("args,phrase", [(["queries=0"], "queries=0"), (["split=nowhere"], "nowhere")])
def test_bad_input_is_one_error_line_and_no_table(trained_tiny_job, monkeypatch, args, phrase):
    monkeypatch.setattr(sys, "argv", ["attention", f"checkpoint={trained_tiny_job}", *args])
    with pytest.raises(SystemExit) as exit_info:
        attention.main()
    message = str(exit_info.value.code)
    assert message.startswith("error: ") and phrase in message and "\n" not in message
    assert not list(trained_tiny_job.glob("checkpoints/*/attention.csv"))
