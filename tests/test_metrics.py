"""The two rules every measure follows: score ties broken as trec_eval breaks them (pytrec_eval, trec_eval's own
code, is the reference), and no measure cut deeper than the run was reranked."""

import json
import random

import pytest
import pytrec_eval
from omegaconf import OmegaConf

from rerank_lora.configs import compose_job, to_spec
from rerank_lora.data.spec import DataSpec
from rerank_lora.data.trec_files import ranked, read_run, top_k, write_run
from rerank_lora.errors import InputError
from rerank_lora.evaluation import metrics
from rerank_lora.evaluation.significance import per_query

MEASURES = ["nDCG@10", "RR(rel=2)@10", "RR@10"]


@pytest.fixture(scope="module")
def tied():
    """30 queries of 10 passages scored 0, 1 or 2 (ties everywhere), pids whose string order is not their
    numeric order ("9" > "10"), graded judgments."""
    rng = random.Random(0)
    qrels, run = {}, {}
    for q in range(30):
        pids = [str(rng.randrange(1, 1000)) for _ in range(40)]
        pids = list(dict.fromkeys(pids))[:10]
        run[f"q{q}"] = {p: float(rng.randrange(3)) for p in pids}
        qrels[f"q{q}"] = {p: rng.choice([0, 0, 1, 2, 3]) for p in pids}
    return qrels, run


def reference(qrels, run) -> dict[str, dict[str, float]]:
    """pytrec_eval's per-query values under the names of MEASURES (recip_rank = RR@10 on runs of 10 passages)."""
    ndcg = pytrec_eval.RelevanceEvaluator(qrels, {"ndcg_cut.10"}).evaluate(run)
    rr2 = pytrec_eval.RelevanceEvaluator(qrels, {"recip_rank"}, relevance_level=2).evaluate(run)
    rr1 = pytrec_eval.RelevanceEvaluator(qrels, {"recip_rank"}, relevance_level=1).evaluate(run)
    return {
        "nDCG@10": {q: v["ndcg_cut_10"] for q, v in ndcg.items()},
        "RR(rel=2)@10": {q: v["recip_rank"] for q, v in rr2.items()},
        "RR@10": {q: v["recip_rank"] for q, v in rr1.items()},
    }


def mean(values: dict[str, float]) -> float:
    return sum(values.values()) / len(values)


def strictly(order: list[str]) -> dict[str, float]:
    """Scores that rank the pids of `order` in that order, with no tie."""
    return {pid: float(len(order) - i) for i, pid in enumerate(order)}


def test_ranked_breaks_ties_by_pid_descending_as_trec_eval():
    scores = {"10": 1.0, "9": 1.0, "a": 2.0, "B": 1.0, "7": 0.5}
    assert [pid for pid, _ in ranked(scores)] == ["a", "B", "9", "10", "7"]  # strcmp: "B" > "9" > "10"
    # pytrec_eval puts the one relevant passage of three tied ones where `ranked` does: last, by descending pid
    qrels = {"q": {"a": 2, "b": 0, "c": 0}}
    rr = pytrec_eval.RelevanceEvaluator(qrels, {"recip_rank"}, relevance_level=2).evaluate({"q": dict.fromkeys("abc", 1.0)})
    assert rr["q"]["recip_rank"] == pytest.approx(1 / 3)
    assert [pid for pid, _ in ranked(dict.fromkeys("abc", 1.0))] == ["c", "b", "a"]


def test_every_measure_breaks_ties_as_pytrec_eval(tied):
    qrels, run = tied
    expected = reference(qrels, run)
    got = per_query(qrels, run, MEASURES)
    means = metrics.compute(qrels, run, MEASURES)
    for m in MEASURES:
        assert got[m] == pytest.approx(expected[m], abs=1e-12), m
        assert means[m] == pytest.approx(mean(expected[m]), abs=1e-12), m
    # the data decides: ties broken by ascending pid would give other values, on nDCG and on RR
    ascending = {q: strictly(sorted(s, key=lambda p: (-s[p], p))) for q, s in run.items()}
    other = reference(qrels, ascending)
    for m in MEASURES:
        assert mean(other[m]) != pytest.approx(means[m], abs=1e-6), m


def test_a_written_run_ranks_as_trec_eval_and_reads_back_exactly(tied, tmp_path):
    qrels, run = tied
    run = {**run, "q_close": {"1": 1.0000001, "2": 1.0000002, "3": 1.0000001}}  # one rounding to 6 decimals would tie
    path = tmp_path / "run.trec"
    write_run(run, path, "test")
    assert read_run(path) == run
    ranks: dict[str, list[tuple[int, str]]] = {}
    for line in path.read_text().splitlines():
        qid, _, pid, rank, _, _ = line.split()
        ranks.setdefault(qid, []).append((int(rank), pid))
    assert ranks["q_close"] == [(1, "2"), (2, "3"), (3, "1")]
    # the rank column, as the only scores, gives pytrec_eval's values on the real scores
    by_column = {q: strictly([pid for _, pid in sorted(rows)]) for q, rows in ranks.items() if q in qrels}
    assert reference(qrels, by_column) == reference(qrels, {q: run[q] for q in qrels})


def test_a_run_cut_to_k_holds_the_k_passages_trec_eval_ranks_first(tied):
    qrels, run = tied
    for k in (1, 3, 5):
        cut = top_k(run, k)
        assert all(len(cut[q]) == k for q in run)
        full = pytrec_eval.RelevanceEvaluator(qrels, {f"ndcg_cut.{k}", "recip_rank"}).evaluate(run)
        short = pytrec_eval.RelevanceEvaluator(qrels, {f"ndcg_cut.{k}", "recip_rank"}).evaluate(cut)
        for q in run:
            assert short[q][f"ndcg_cut_{k}"] == pytest.approx(full[q][f"ndcg_cut_{k}"], abs=1e-12)
            if full[q]["recip_rank"] >= 1 / k:
                assert short[q]["recip_rank"] == pytest.approx(full[q]["recip_rank"], abs=1e-12)


def test_a_measure_cut_deeper_than_the_run_is_refused_in_one_line():
    metrics.check_cutoffs(["nDCG@10", "RR(rel=2)@10", "AP(rel=2)", "nDCG"], 10, "data.eval_depth")
    with pytest.raises(InputError) as error:
        metrics.check_cutoffs(["nDCG@10", "nDCG@20"], 10, "data.eval_depth")
    assert str(error.value) == (
        "measure nDCG@20 is cut at 20 but the run is reranked to depth 10; accepted: cutoffs <= 10, or data.eval_depth >= 20"
    )
    with pytest.raises(InputError, match=r"nDCG@20 is cut at 20, measure AP\(rel=2\)@100 is cut at 100 .* depth >= 100"):
        metrics.check_cutoffs(["nDCG@20", "AP(rel=2)@100"], 10, "depth")


def test_a_split_with_its_own_depth_names_its_key():
    cfg = compose_job(["recipe=rankllama", "data.splits.dev_small.depth=50"])
    spec = to_spec(DataSpec, cfg.data, "data")
    metrics.check_split_cutoffs(cfg.measures, spec, ["dl19", "dl20"])  # data.eval_depth 100
    with pytest.raises(InputError, match=r"reranked to depth 50; .* data\.splits\.dev_small\.depth >= 100$"):
        metrics.check_split_cutoffs(cfg.measures, spec, spec.eval_splits)


def test_rerank_refuses_a_measure_deeper_than_depth_before_reading_anything(tmp_path):
    from rerank_lora.rerank import rerank

    args = [f"checkpoint={tmp_path / 'none'}", "run=r", "corpus=c", "queries=q", "qrels=qr", "depth=10"]
    with pytest.raises(InputError, match=r"nDCG@20 is cut at 20 .* depth 10; accepted: cutoffs <= 10, or depth >= 20"):
        rerank([*args, "measures=[nDCG@10,nDCG@20]"])


@pytest.fixture
def deep_job(tmp_path):
    """A job folder whose config asks nDCG@20 of a depth-10 run (as jobs did before it was refused), with one
    checkpoint folder: enough for the analyses to read the config, no weights."""
    job = tmp_path / "job"
    (job / ".hydra").mkdir(parents=True)
    OmegaConf.save(compose_job(["measures=[nDCG@10,nDCG@20]", "logger=none"]), job / ".hydra" / "config.yaml")
    checkpoint = job / "checkpoints" / "step-2"
    checkpoint.mkdir(parents=True)
    (checkpoint / "reranker.json").write_text(json.dumps({"step": 2, "config": "../../.hydra/config.yaml"}))
    return checkpoint


@pytest.mark.parametrize("command", ["ablate", "probe"])
def test_analyses_refuse_a_measure_deeper_than_depth_before_any_model_loads(deep_job, command, monkeypatch):
    import rerank_lora.analysis.trained_job as trained_job
    from rerank_lora.ablate import ablate
    from rerank_lora.probe import probe

    monkeypatch.setattr(trained_job, "load_collection", lambda *_: pytest.fail("read the data"))
    monkeypatch.setattr(trained_job, "load_checkpoint", lambda *_: pytest.fail("loaded a model"))
    tool, extra = (ablate, ["ablation=modules"]) if command == "ablate" else (probe, [])
    for depth, said in (([], 10), (["depth=12"], 12)):  # the job's data.eval_depth, then depth=
        with pytest.raises(InputError, match=rf"depth {said}; accepted: cutoffs <= {said}, or depth >= 20$"):
            tool([f"checkpoint={deep_job}", "logger=none", *extra, *depth])


def test_the_score_margin_is_the_relevant_mean_minus_the_others_mean_on_the_real_scores():
    qrels = {"a": {"1": 2, "2": 1, "3": 0}, "b": {"7": 1}, "c": {"9": 0}, "d": {"5": 3}}
    run = {
        "a": {"1": 3.0, "2": 0.5, "3": -1.0, "4": 0.25},  # 4 is unjudged: not relevant
        "b": {"7": 2.0, "8": 1.0, "6": 1.0},  # one positive among others, as on a 1-positive split
        "c": {"9": 1.0, "10": 0.0},  # nothing relevant: no margin
        "d": {"5": 1.0},  # nothing else: no margin
    }
    by_hand = {"a": (3.0 + 0.5) / 2 - (-1.0 + 0.25) / 2, "b": 2.0 - 1.0}
    by_hand_rel2 = {"a": 3.0 - (0.5 - 1.0 + 0.25) / 3}
    values = per_query(qrels, run, ["Margin", "Margin(rel=2)", "nDCG@10"])
    assert values["Margin"] == pytest.approx(by_hand, abs=1e-12)
    assert values["Margin(rel=2)"] == pytest.approx(by_hand_rel2, abs=1e-12)
    assert set(values["nDCG@10"]) == {"a", "b", "c", "d"}
    means = metrics.compute(qrels, run, ["nDCG@10", "Margin", "Margin(rel=2)"])
    assert list(means) == ["nDCG@10", "Margin", "Margin(rel=2)"]
    assert means["Margin"] == pytest.approx(mean(by_hand), abs=1e-12)
    assert means["Margin(rel=2)"] == pytest.approx(by_hand_rel2["a"], abs=1e-12)
    # the real scores, not the rank order ir_measures is handed: doubling every score doubles the margin
    doubled = {q: {p: 2 * s for p, s in scores.items()} for q, scores in run.items()}
    assert metrics.compute(qrels, doubled, ["Margin"])["Margin"] == pytest.approx(2 * means["Margin"], abs=1e-12)


def test_the_margin_has_no_cutoff():
    metrics.check_cutoffs(["Margin", "Margin(rel=2)", "nDCG@10"], 10, "depth")
    for name in ("Margin@10", "Margin(rel=x)", "margin"):
        with pytest.raises(InputError, match=r"nor Margin / Margin\(rel=N\) \(no cutoff\)"):
            metrics.parse_measures([name])
