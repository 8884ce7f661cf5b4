"""data=msmarco's training rows read and tokenised on demand: nothing is tokenised when the data module is built,
group k is the same whatever was read before it and however small the token cache, titles go before the text, and
a full-size file (marked slow) starts in seconds with flat memory."""

import subprocess
import sys
import time

import pytest
from upstream_rows import offline_cell, write_rows

import rerank_lora.data.datamodule as datamodule
from conftest import ROOT, specs
from rerank_lora.data.collection import load_collection
from rerank_lora.data.datamodule import RerankDataModule
from rerank_lora.data.tevatron import clean_title
from rerank_lora.errors import InputError
from rerank_lora.model.backbone import load_backbone


class CountingTokenizer:
    """A tokenizer that records how many texts each call tokenises."""

    def __init__(self, tokenizer):
        self.tokenizer, self.calls = tokenizer, []

    def __call__(self, texts, *pairs_with, **kwargs):
        self.calls.append(len(texts))
        return self.tokenizer(texts, *pairs_with, **kwargs)

    def __getattr__(self, name):
        return getattr(self.tokenizer, name)


@pytest.fixture(scope="module")
def tokenizer():
    return load_backbone(specs(["model=tiny_llama"])[0])[1]


@pytest.fixture(scope="module")
def rows(tmp_path_factory):
    folder = tmp_path_factory.mktemp("rows")
    return write_rows(folder / "train.jsonl", 30, negatives=5, no_positive_every=7), folder / "cache"


def paper_data(rows, *overrides):
    """The DataSpec of a paper-grid cell on local rows (recipe=rankllama, DL19/DL20 from the shipped files)."""
    return specs(["recipe=rankllama", *offline_cell(*rows), *overrides])[1]


def test_groups_are_tokenised_when_drawn_and_depend_on_k_alone(rows, tokenizer, monkeypatch):
    spec = paper_data(rows, "data.group_size=8", "data.template=rerank_lora")  # the template with token caches
    counting = CountingTokenizer(tokenizer)
    data = RerankDataModule(load_collection(spec), counting, spec, seed=42)
    assert counting.calls == [1, 1]  # the template's length check (one query, one passage); no row tokenised yet
    assert len(data.train_set) == 26  # 30 rows, 4 without a positive
    forward = [data.train_set.group(k) for k in range(60)]  # two passes and a bit
    assert counting.calls and max(counting.calls) <= 8  # one query, then a group's passages, at a time
    monkeypatch.setattr(datamodule, "CACHED_PASSAGES", 3)
    monkeypatch.setattr(datamodule, "CACHED_QUERIES", 1)
    again = RerankDataModule(load_collection(spec), tokenizer, spec, seed=42)
    assert [again.train_set.group(k) for k in reversed(range(60))][::-1] == forward  # a resume reads from any k
    assert all(len(g) == 8 for g in forward) and forward[0] != forward[26]  # each pass in its own order


def test_a_group_is_its_rows_positive_then_distinct_negatives(rows, tokenizer):
    spec = paper_data(rows, "data.group_size=8", "data.template=rerank_lora")  # the template with token caches
    collection = load_collection(spec)
    source = collection.train_rows
    data = RerankDataModule(collection, tokenizer, spec, seed=0)
    order = data.train_set._order(0)
    for k in range(5):
        example = source.example(order[k])
        positives = {f" document: {p[1]}" for p in example.positives}
        texts = data.encoder.passages  # the cache holds what the group just tokenised, by the text tokenised
        data.train_set.group(k)
        recent = list(texts.ids)[-8:]
        assert recent[0] in positives
        assert len(set(recent)) == 8 and not positives & set(recent[1:])  # 5 own negatives + 2 random ones


def test_titles_travel_beside_the_text_for_the_template_to_place(rows):
    import json

    first = json.loads(rows[0].read_text().splitlines()[0])
    with_titles = load_collection(paper_data(rows, "data.titles=true")).train_rows.example(0)
    without = load_collection(paper_data(rows)).train_rows.example(0)  # the recipe's default: no titles
    for passage, titled, plain in zip(first["positive_passages"], with_titles.positives, without.positives):
        assert titled == (passage["docid"], passage["text"], passage["title"])
        assert plain == (passage["docid"], passage["text"])
    assert clean_title("-") == "" and clean_title("Spider-Man ") == "Spider Man"


def test_first_stage_candidates_are_not_training_negatives_here(rows, tokenizer):
    spec = paper_data(rows, "data.negatives=[triples,candidates]")
    with pytest.raises(InputError, match=r"data\.negatives=.*no first-stage candidates; accepted there: triples"):
        RerankDataModule(load_collection(spec), tokenizer, spec, seed=0)


START = """
import resource, sys, time
from rerank_lora.configs import register_resolvers
from rerank_lora.data.collection import load_collection
from rerank_lora.data.datamodule import RerankDataModule
from rerank_lora.model.backbone import load_backbone
sys.path.insert(0, sys.argv[1])
from conftest import specs
from upstream_rows import offline_cell
register_resolvers()
start = time.monotonic()
spec = specs(["recipe=rankllama", "data.train_queries=null", *offline_cell(sys.argv[2], sys.argv[3])])[1]
tokenizer = load_backbone(specs(["model=tiny_llama"])[0])[1]
data = RerankDataModule(load_collection(spec), tokenizer, spec, seed=42)
groups = [data.train_set.group(k) for k in range(64)]  # one optimizer step of the recipe: 16 x 4 groups
print(len(data.train_set), time.monotonic() - start, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024)
"""


@pytest.mark.slow
def test_a_hundred_thousand_rows_start_at_once_in_flat_memory(tmp_path):
    """A quarter of the full set: its Arrow cache built once, then the data module and a first step's groups in
    seconds, with memory that does not grow with the rows (400,782 rows: see sweeps/README.md)."""
    rows = write_rows(tmp_path / "train.jsonl", 100_000, negatives=36)
    cache = tmp_path / "cache"
    args = [sys.executable, "-c", START, str(ROOT / "tests"), str(rows), str(cache)]
    subprocess.run(args, check=True, capture_output=True, text=True, timeout=900)  # the one-off Arrow build
    began = time.monotonic()
    out = subprocess.run(args, check=True, capture_output=True, text=True, timeout=300).stdout.split()
    kept, seconds, peak_mb = int(out[0]), float(out[1]), int(out[2])
    assert kept == 100_000 and seconds < 30 and time.monotonic() - began < 60
    assert peak_mb < 1500, peak_mb
