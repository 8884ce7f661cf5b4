"""bench_peers' own side, without the peers' venv, on a tiny model: ours measured through the job's Lightning path;
the training JSONL it hands Tevatron holds exactly the groups ours trains on, in the shape Tevatron's dataset code
reads; the scoring pairs are exactly DL19's first-stage top 10 of the first queries, the pairs ours scores; a
missing venv or a failing peer script is one error."""

import json
import sys

import pytest
from datasets import load_dataset

from conftest import MINI
from rerank_lora.bench import peer_report as peers_report
from rerank_lora.bench import peers as bench_peers
from rerank_lora.bench.peer_inputs import group_texts, scoring_rows, tevatron_row
from rerank_lora.bench.peer_process import check_peers, run_peer
from rerank_lora.data.trec_files import read_run
from rerank_lora.errors import InputError
from rerank_lora.tables import write_jsonl

WARMUP, STEPS, QUERIES = 1, 3, 2


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """The head-to-head job on tiny_llama: ours measured (training and scoring), its config and data module."""
    spec = bench_peers.head_to_head_job(STEPS, layers_default=False, model="tiny_llama")
    rows, data = bench_peers.measure_ours(spec, WARMUP, QUERIES, tmp_path_factory.mktemp("ours"), unmerged=True)
    return spec, rows, data


def test_ours_is_timed_over_the_steps_after_the_warm_up_and_scores_every_pair(tiny):
    spec, rows, _ = tiny
    assert spec.model.num_layers is None and spec.data.max_length == 160 and spec.compute.precision == "32-true"
    training = rows["training"]
    assert training["steps"] == STEPS - WARMUP and training["pairs"] == (STEPS - WARMUP) * 2 * 4
    assert training["pairs_per_s"] > 0 and training["seconds"] > 0
    assert training["settings"]["num_layers"] == spec.model.config["num_hidden_layers"]  # all of them
    assert 0 < training["tokens_per_pair"] <= training["computed_tokens_per_pair"] <= 160
    for scoring in (rows["scoring"], rows["scoring_unmerged"]):
        assert scoring["pairs"] == QUERIES * 10 and scoring["pairs_per_s"] > 0
    assert rows["scoring"]["settings"]["lora_merged"] and not rows["scoring_unmerged"]["settings"]["lora_merged"]


def test_tevatron_jsonl_holds_the_groups_ours_trains_on_in_tevatrons_fields(tiny, tmp_path):
    spec, _, data = tiny
    groups = group_texts(data.train_set, STEPS * spec.data.queries_per_batch)
    path = write_jsonl(tmp_path / "train.jsonl", [tevatron_row(g) for g in groups])
    # read as Tevatron's RerankerTrainDataset reads it (datasets' json loader), one row per group, in order
    rows = load_dataset("json", data_files=str(path), split="train", cache_dir=str(tmp_path / "cache"))
    assert len(rows) == len(groups) == STEPS * 2
    texts = data.collection
    for k, row in enumerate(rows):
        assert len(row["positive_passages"]) == 1 and len(row["negative_passages"]) == spec.data.group_size - 1
        passages = row["positive_passages"] + row["negative_passages"]
        assert all(set(p) == {"docid", "title", "text"} and p["title"] == "" for p in passages)
        assert row["query"] == texts.queries[row["query_id"]]
        assert all(p["text"] == texts.corpus[p["docid"]] for p in passages)
        query = (row["query_id"], row["query"])
        tokens = data.encoder.encode([query] * len(passages), [(p["docid"], p["text"]) for p in passages])
        assert tokens == data.train_set.group(k)  # the very group (positive first) of ours' training step k // 2


def test_scoring_pairs_are_the_first_dl19_queries_first_stage_top_10(tiny):
    _, _, data = tiny
    rows = scoring_rows(data, "dev")
    dev = {json.loads(line)["qid"] for line in (MINI / "queries.jsonl").read_text().splitlines()
           if json.loads(line)["split"] == "dev"}
    run = read_run(MINI / "candidates.tsv")
    first = [qid for qid in run if qid in dev][:QUERIES]
    expected = [(q, p) for q in first for p, _ in sorted(run[q].items(), key=lambda item: (-item[1], item[0]))[:10]]
    assert [(r["qid"], r["pid"]) for r in rows] == expected
    assert all(r["query"] == data.collection.queries[r["qid"]] and r["passage"] == data.collection.corpus[r["pid"]] for r in rows)
    ours = {(q, p) for batch in data.eval_batches("dev") for q, p in zip(batch.qids, batch.pids)}
    assert ours == set(expected)


def test_a_missing_peers_venv_or_a_failing_peer_is_one_error(tmp_path):
    with pytest.raises(InputError, match="make peers-setup"):
        check_peers(tmp_path / "missing" / "python")
    with pytest.raises(InputError, match=r"flag_score.py failed \(exit status 2\)(.|\n)*--model"):
        run_peer(sys.executable, "flag_score.py", [], 1, tmp_path)


def test_the_table_prints_every_row_and_the_ratios_against_their_goals():
    def row(rate):
        return {"pairs_per_s": rate, "seconds": 10 / rate, "pairs": 10, "settings": {"batch_size": 16}}

    report = {
        "training": {peers_report.OURS_30: row(2.2), peers_report.OURS_30_COMPILED: row(3.0), peers_report.TEVATRON: row(2.0)},
        "scoring": {peers_report.OURS_30: row(10.0), peers_report.FLAG_TUNED: row(6.0), peers_report.FLAG_DEFAULT: row(2.0)},
        "machine": {"cpu": "AMD EPYC", "cpus": 2, "torch_threads": 2, "load_average": {"start": 0.1, "end": 1.9}},
    }
    report["ratios"] = peers_report.ratios(report)
    assert report["ratios"]["training"]["value"] == pytest.approx(1.1)
    printed = peers_report.table(report)
    assert "ratio training, compiled: 1.50" in printed and "goal >= 1.3: met" in printed
    assert "ratio training: 1.10" in printed and "goal >= 1.3: NOT met" in printed
    assert "ratio scoring: 1.67" in printed and "goal >= 2.0: NOT met" in printed
    del report["training"][peers_report.OURS_30_COMPILED]  # compiled_row=false: no compiled ratio
    assert set(peers_report.ratios(report)) == {"training", "scoring"}
    assert peers_report.FLAG_DEFAULT in printed and "AMD EPYC" in printed and "0.10 at the start" in printed
