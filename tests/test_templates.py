"""Input templates exact to the token, computed here independently with plain tokenizer calls; the score's read
position; token ids independent of what was read first; the retired template name."""

import copy

import pytest
import torch
from tokenizers import processors

from conftest import specs
from rerank_lora.data.datamodule import check_titles_on_both_sides
from rerank_lora.data.in_memory import Collection
from rerank_lora.data.pairs import TEMPLATES, TemplateOptions, check_template, pad, pair_encoder, tevatron_string
from rerank_lora.data.spec import DataSpec
from rerank_lora.errors import InputError
from rerank_lora.model.backbone import load_backbone
from rerank_lora.model.packing import use_packing
from rerank_lora.model.read_position import LAST_ATTENDED, LAST_NOT_PAD, ReadPosition, read_position
from rerank_lora.model.reranker import Reranker

QUERY = "what is a cat-like animal"
PASSAGES = [("p1", "Cats purr and hunt mice. " * 30, "Cat - Wikipedia"), ("p2", "A short passage.", "-"), ("p3", "No title.")]


@pytest.fixture(scope="module")
def tiny():
    """The tiny models' backbone and tokenizer (SmolLM2's: pad == EOS, no special tokens added to a text)."""
    return load_backbone(specs(["model=tiny_llama"])[0])


@pytest.fixture(scope="module")
def tokenizer(tiny):
    return tiny[1]


@pytest.fixture(scope="module")
def bos_pairs(tokenizer):
    """The same tokenizer with a Llama-like pair rule: BOS before each sequence."""
    llama_like = copy.deepcopy(tokenizer)
    bos = (tokenizer.bos_token, tokenizer.bos_token_id)
    llama_like._tokenizer.post_processor = processors.TemplateProcessing(
        single=f"{bos[0]} $A", pair=f"{bos[0]} $A {bos[0]} $B:1", special_tokens=[bos]
    )
    assert llama_like("a", "b")["input_ids"][0] == bos[1]
    return llama_like


@pytest.mark.parametrize("append_eos", [False, True])
@pytest.mark.parametrize("prefixes", [("", ""), ("query: ", "document: ")])
@pytest.mark.parametrize("max_length", [24, 512])
def test_tevatron_ids_are_the_tokenizers_ids_of_tevatrons_string(tokenizer, append_eos, prefixes, max_length):
    options = TemplateOptions(*prefixes, append_eos)
    ours = pair_encoder(tokenizer, max_length, "tevatron", options=options).encode([("q", QUERY)] * 3, PASSAGES)
    for passage, ids in zip(PASSAGES, ours):
        title = passage[2].replace("-", " ").strip() if len(passage) > 2 else ""
        text = f"{prefixes[0]} {QUERY} {prefixes[1]} {title} {passage[1]}".strip()
        cut = max_length - 1 if append_eos else max_length
        expected = tokenizer(text, truncation=True, max_length=cut, add_special_tokens=True)["input_ids"]
        assert ids == expected + ([tokenizer.eos_token_id] if append_eos else [])
    assert len(ours[0]) == min(max_length, len(ours[0]))


def test_tevatron_string_keeps_every_space_of_its_format():
    assert tevatron_string("q", "", "text", "query: ", "document: ") == "query:  q document:   text"
    assert tevatron_string("q", "Spider-Man ", "text") == "q  Spider Man text"


def test_rankllama_v1_is_prepare_for_models_pair_of_bos_prefixed_sequences(tokenizer, bos_pairs):
    long_query = " ".join(["cat"] * 50)
    for tok, specials in [(tokenizer, 0), (bos_pairs, 1)]:
        bos = tok.bos_token_id
        (ids,) = pair_encoder(tok, 100, "rankllama_v1").encode([("q", long_query)], [PASSAGES[0]])
        query = tok("query: " + long_query, add_special_tokens=False)["input_ids"][:32]
        passage = tok(f"document: {PASSAGES[0][2]} {PASSAGES[0][1]}", add_special_tokens=False)["input_ids"][: 100 - 35]
        first, second = [bos] + query, [bos] + passage
        excess = len(first) + len(second) + 2 * specials - 100  # only_first truncation
        first = first[: len(first) - excess] if excess > 0 else first
        assert ids == [bos] * specials + first + [bos] * specials + second
        assert tok.eos_token_id not in ids and len(ids) <= 100
    assert excess == 1  # the Llama-like pair was cut at the query's end


def test_token_ids_do_not_depend_on_what_was_read_first(tokenizer):
    titled, plain = ("p", "the same text", "A Title"), ("p", "the same text")  # one id, two inputs
    for template in TEMPLATES:
        fresh = {p: pair_encoder(tokenizer, 64, template).encode([("q", QUERY)], [p])[0] for p in (titled, plain)}
        for order in ([titled, plain], [plain, titled]):
            encoder = pair_encoder(tokenizer, 64, template)
            for passage in order:
                assert encoder.encode([("q", QUERY)], [passage])[0] == fresh[passage], template
        assert fresh[titled] != fresh[plain]


def test_with_pad_eos_and_an_appended_eos_the_score_is_read_before_the_eos(tokenizer):
    assert tokenizer.pad_token_id == tokenizer.eos_token_id  # SmolLM2's tokenizer
    read = read_position("tevatron", tokenizer)
    assert read == ReadPosition(LAST_NOT_PAD, tokenizer.eos_token_id)
    encoder = pair_encoder(tokenizer, 64, "tevatron", options=TemplateOptions("query: ", "document: ", True))
    rows = encoder.encode([("q", QUERY)] * 3, PASSAGES)
    batch = pad(rows, tokenizer.pad_token_id)
    assert read.index(**batch).tolist() == [len(r) - 2 for r in rows]  # the token before each EOS
    assert read_position("rerank_lora", tokenizer).index(**batch).tolist() == [len(r) - 1 for r in rows]
    assert ReadPosition.from_json(read.to_json()) == read and ReadPosition.from_json({}).rule == LAST_ATTENDED


def test_packed_training_scores_read_the_same_token_as_padded_ones(tiny, tokenizer):
    backbone, _ = load_backbone(specs(["model=tiny_llama"])[0])
    use_packing(backbone)
    reranker = Reranker(backbone, 3, packed=True, read=read_position("tevatron", tokenizer)).eval()
    encoder = pair_encoder(tokenizer, 64, "tevatron", options=TemplateOptions("query: ", "document: ", True))
    batch = pad(encoder.encode([("q", QUERY)] * 3, PASSAGES), tokenizer.pad_token_id)
    with torch.no_grad():
        padded, packed = reranker(**batch), reranker.packed_scores(**batch)
        states = backbone(**batch, use_cache=False).last_hidden_state
    assert torch.allclose(padded, packed, atol=1e-5)
    before_eos = batch["attention_mask"].sum(dim=1) - 2
    expected = reranker.head_scores(states[torch.arange(3), before_eos])
    assert torch.allclose(padded, expected, atol=1e-5)


def test_the_retired_rankllama_template_is_one_error_naming_its_replacements():
    for make in (lambda: check_template("rankllama"), lambda: DataSpec(template="rankllama"),
                 lambda: specs(["data.template=rankllama"])):
        with pytest.raises(InputError, match=r"'rankllama' is retired.*tevatron.*rankllama_v1"):
            make()


def test_titled_training_passages_with_untitled_evaluation_passages_are_refused():
    collection = Collection(corpus={}, queries={}, query_splits={}, qrels={}, candidates={}, train_rows=object())
    with pytest.raises(InputError, match=r"data.titles=true: .*accepted: data.titles=false"):
        check_titles_on_both_sides(collection, DataSpec(loader="msmarco", titles=True, eval_splits=["dl19"]))
    check_titles_on_both_sides(collection, DataSpec(loader="msmarco", titles=False, eval_splits=["dl19"]))
