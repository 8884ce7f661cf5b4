"""The data=trec loader: string ids, JSONL or TSV queries, and errors that name file and line."""

import dataclasses
import json
from pathlib import Path

import pytest

from rerank_lora.data.collection import load_collection
from rerank_lora.data.pairs import TEMPLATES, pair_encoder
from rerank_lora.data.spec import DataSpec
from rerank_lora.data.trec_files import top_k
from rerank_lora.errors import InputError


def write_collection(folder, queries_as_tsv=False) -> DataSpec:
    """A tiny collection's files in `folder`; returns the DataSpec (loader=files) naming them."""
    corpus = {"msmarco_passage_12_345": "the cat sat", "msmarco_passage_00_001": "dogs bark", "p3": "birds sing"}
    (folder / "corpus.jsonl").write_text("".join(json.dumps({"pid": p, "text": t}) + "\n" for p, t in corpus.items()))
    if queries_as_tsv:
        (folder / "queries.tsv").write_text("q_001\twhere do cats sit\n007\twhat barks\n")
    else:
        rows = [{"qid": "q_001", "text": "where do cats sit", "split": "test"}, {"qid": "007", "text": "what barks"}]
        (folder / "queries.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (folder / "qrels.tsv").write_text("q_001 0 msmarco_passage_12_345 2\n007 0 msmarco_passage_00_001 1\n")
    (folder / "run.trec").write_text(
        "q_001 Q0 msmarco_passage_12_345 1 9.0 bm25\nq_001 Q0 p3 2 8.0 bm25\n007 Q0 msmarco_passage_00_001 1 5 bm25\n"
    )
    (folder / "triples.tsv").write_text("007\tmsmarco_passage_00_001\tp3\n")
    name = "queries.tsv" if queries_as_tsv else "queries.jsonl"
    files = {"corpus": "corpus.jsonl", "queries": name, "qrels": "qrels.tsv", "candidates": "run.trec", "triples": "triples.tsv"}
    return DataSpec(**{k: str(folder / v) for k, v in files.items()})


@pytest.mark.parametrize("tsv", [False, True])
def test_string_ids_and_split_labels(tmp_path, tsv):
    c = load_collection(write_collection(tmp_path, tsv))
    assert c.corpus["msmarco_passage_12_345"] == "the cat sat"
    assert c.qrels["007"] == {"msmarco_passage_00_001": 1}  # "007" stays a string, leading zeros kept
    assert c.candidates["q_001"] == {"msmarco_passage_12_345": 9.0, "p3": 8.0}
    assert c.triples == [("007", "msmarco_passage_00_001", "p3")]
    # an unlabelled query belongs to every split; a labelled one only to its own
    assert sorted(c.split_queries("test")) == ["007", "q_001"]
    assert c.split_queries("dev") == (["007"] if not tsv else ["q_001", "007"])


@pytest.mark.parametrize(
    "file,content,expected",
    [
        ("corpus", '{"pid": "p1", "text": "ok"}\n{"pid": "p2"}\n', "corpus.jsonl:2"),
        ("queries", '{"qid": "q", "text": "ok"}\nnot json\n', "queries.jsonl:2"),
        ("qrels", "q_001 0 p 1\nq_001 0 p\n", "qrels.tsv:2"),
        ("candidates", "q_001 Q0 p3 1 x bm25\n", "run.trec:1"),
        ("triples", "007\tp3\n", "triples.tsv:1"),
    ],
)
def test_malformed_file_names_file_and_line(tmp_path, file, content, expected):
    spec = write_collection(tmp_path)
    Path(getattr(spec, file)).write_text(content)
    with pytest.raises(InputError, match=expected.replace(".", r"\.")):
        load_collection(spec)


def test_missing_file_is_named(tmp_path):
    spec = dataclasses.replace(write_collection(tmp_path), corpus=str(tmp_path / "absent.jsonl"))
    with pytest.raises(InputError, match="absent.jsonl"):
        load_collection(spec)


def test_unknown_loader_is_named(tmp_path):
    spec = dataclasses.replace(write_collection(tmp_path), loader="parquet")
    with pytest.raises(InputError, match="data.loader='parquet'; accepted: files, msmarco"):
        load_collection(spec)


@pytest.mark.parametrize(
    "file,line,kind",
    [("qrels", "ghost 0 p3 1\n", "query"), ("candidates", "ghost Q0 p3 1 1.0 bm25\n", "query"),
     ("candidates", "q_001 Q0 nowhere 1 1.0 bm25\n", "passage"), ("triples", "007\tp3\tnowhere\n", "passage")],
)
def test_ids_that_match_nothing_are_named(tmp_path, file, line, kind):
    spec = write_collection(tmp_path)
    with open(getattr(spec, file), "a") as handle:
        handle.write(line)
    with pytest.raises(InputError, match=f"1 {kind} id\\(s\\) match nothing") as err:
        load_collection(spec)
    assert ("ghost" if kind == "query" else "nowhere") in str(err.value)


@pytest.mark.parametrize(
    "file, content, phrases",
    [
        ("corpus", "\n\n", ["corpus.jsonl: empty", '"pid" and "text"']),
        ("queries", "", ["queries.jsonl: empty"]),
        ("corpus", '{"pid": "p3", "text": "a"}\n{"pid": "p3", "text": "b"}\n', ["corpus.jsonl:2", "passage id 'p3'", "line 1"]),
        ("queries", '{"qid": "007", "text": "a"}\n{"qid": "007", "text": "b"}\n', ["queries.jsonl:2", "query id '007'"]),
        ("queries", '{"qid": "007", "text": "  "}\n', ["queries.jsonl:1", 'non-empty "text"']),
        ("qrels", "q_001 0 p3 1.5\n", ["qrels.tsv:1", "malformed", "relevance"]),
        ("qrels", "", ["qrels.tsv: empty"]),
    ],
)
def test_empty_duplicate_and_ill_typed_rows_are_named_with_file_and_line(tmp_path, file, content, phrases):
    spec = write_collection(tmp_path)
    Path(getattr(spec, file)).write_text(content)
    with pytest.raises(InputError) as raised:
        load_collection(spec)
    for phrase in phrases:
        assert phrase in str(raised.value)


def test_bytes_that_are_not_utf8_are_named_with_their_line(tmp_path):
    spec = write_collection(tmp_path)
    Path(spec.corpus).write_bytes(Path(spec.corpus).read_bytes() + b'{"pid": "p4", "text": "caf\xe9"}\n')
    with pytest.raises(InputError, match=r"corpus\.jsonl:4: not UTF-8"):
        load_collection(spec)


def test_candidates_are_ranked_by_score_whatever_their_rank_column_and_ties_as_trec_eval(tmp_path):
    spec = write_collection(tmp_path)
    Path(spec.candidates).write_text(
        "q_001 Q0 p3 1 1.0 bm25\nq_001 Q0 msmarco_passage_12_345 7 2.0 bm25\nq_001 Q0 msmarco_passage_00_001 2 1.0 bm25\n"
    )
    c = load_collection(spec)
    assert list(top_k(c.candidates, 2)["q_001"]) == ["msmarco_passage_12_345", "p3"]  # tied: pid descending


def test_a_one_megabyte_passage_is_cut_to_max_length(tmp_path):
    from conftest import specs
    from rerank_lora.model.backbone import load_backbone

    _, tokenizer = load_backbone(specs(["model=tiny_llama"])[0])
    for template in TEMPLATES:  # rankllama_v1 cuts a passage to 64 - 35 tokens, as RankLLaMA v1 did
        (ids,) = pair_encoder(tokenizer, 64, template).encode([("q", "what is a cat")], [("p", "cats purr. " * 100_000)])
        assert len(ids) == 64 or (template == "rankllama_v1" and len(ids) < 64)
        assert (ids[-1] == tokenizer.eos_token_id) == (template == "rerank_lora")  # tevatron: EOS only with append_eos
