"""Published rerankers: peft sequence-classification adapters of the three families, built here in exactly the hub
layout (a tiny base saved to a folder, AutoModelForSequenceClassification with num_labels=1, peft SEQ_CLS), score
in this project as transformers + peft score them; this project's checkpoints export to that layout with equal
scores; every tool runs on an imported adapter; `rerank` on a job's own checkpoint reproduces the job's metrics."""

import json

import pytest
import torch
from peft import LoraConfig, PeftModel, get_peft_model
from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer

from conftest import MINI, model_metrics, run_module, specs
from rerank_lora import ablate, adapter_stats, export, probe, rerank
from rerank_lora.data.pairs import TemplateOptions, pair_encoder
from rerank_lora.data.trec_files import read_corpus, read_queries, read_run
from rerank_lora.errors import InputError
from rerank_lora.job_folder import JobFolder
from rerank_lora.model.backbone import gguf_cache
from rerank_lora.tables import read_csv

FAMILIES = {"tiny_llama": "llama", "tiny_mistral": "mistral", "tiny_pythia": "gpt_neox"}
FILES = [f"corpus={MINI / 'corpus.jsonl'}", f"queries={MINI / 'queries.jsonl'}"]
RANKLLAMA = TemplateOptions("query: ", "document: ", False)  # the prefixes a published adapter is imported with


def tiny_base(model_name: str, folder):
    """A random tiny classifier of the family with SmolLM2's tokenizer, saved as a hub model folder."""
    model, _, _ = specs([f"model={model_name}"])
    tokenizer = AutoTokenizer.from_pretrained(gguf_cache(model.gguf["package"], model.gguf["file"], model.cache_dir))
    config = AutoConfig.for_model(model.family, vocab_size=len(tokenizer), num_labels=1, **model.config)
    torch.manual_seed(0)
    AutoModelForSequenceClassification.from_config(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder, model.modules


def seq_cls_adapter(base, targets: list[str], folder):
    """A LoRA adapter saved by peft from the classifier, with non-zero LoRA B matrices and a random score head."""
    classifier = AutoModelForSequenceClassification.from_pretrained(base, num_labels=1)
    config = LoraConfig(task_type="SEQ_CLS", r=4, lora_alpha=8, lora_dropout=0.1, target_modules=targets)
    adapted = get_peft_model(classifier, config)
    torch.manual_seed(1)
    for param in adapted.parameters():
        if param.requires_grad:  # lora_A, lora_B, and the score head peft keeps as a module to save
            torch.nn.init.normal_(param, std=0.2)
    adapted.save_pretrained(folder)
    return folder


def reference_scores(
    base, adapter, pairs: list[tuple[str, str]], template: str, max_length: int, options: TemplateOptions | None = None,
) -> list[float]:
    """The published loading path (classifier + PeftModel, merged), one pair at a time. rerank_lora: the logit at the
    last token (its EOS); the classifier templates: at the last token that is not the tokenizer's pad token."""
    tokenizer = AutoTokenizer.from_pretrained(base)
    model = PeftModel.from_pretrained(AutoModelForSequenceClassification.from_pretrained(base, num_labels=1), adapter)
    model = model.merge_and_unload().eval()
    model.config.pad_token_id = None if template == "rerank_lora" else tokenizer.pad_token_id
    corpus, (queries, _) = read_corpus(MINI / "corpus.jsonl"), read_queries(MINI / "queries.jsonl")
    encoder = pair_encoder(tokenizer, max_length, template, options=options)
    ids = encoder.encode([(q, queries[q]) for q, _ in pairs], [(p, corpus[p]) for _, p in pairs])
    with torch.inference_mode():
        return [model(input_ids=torch.tensor([row])).logits[0, 0].item() for row in ids]


def small_run(path, queries: int = 3, depth: int = 4):
    """The first `depth` BM25 candidates of the first `queries` DL19 queries, as a TREC run file."""
    run = read_run(MINI / "candidates.tsv")
    _, labels = read_queries(MINI / "queries.jsonl")
    chosen = [q for q in run if labels.get(q) == "dev"][:queries]
    lines = []
    for qid in chosen:
        ranked = sorted(run[qid].items(), key=lambda item: -item[1])[:depth]
        lines += [f"{qid} Q0 {pid} {rank} {score} bm25" for rank, (pid, score) in enumerate(ranked, 1)]
    path.write_text("\n".join(lines) + "\n")
    return path


def into(folder) -> list[str]:
    """Where a test's reranked run and imported jobs go: its own folder, never the working one."""
    return [f"out={folder / 'reranked.trec'}", f"imported_dir={folder / 'imp'}"]


def pairs_and_scores(run_path) -> tuple[list[tuple[str, str]], list[float]]:
    run = read_run(run_path)
    pairs = [(q, p) for q in run for p in run[q]]
    return pairs, [run[q][p] for q, p in pairs]


@pytest.fixture(scope="module", params=list(FAMILIES))
def published(request, tmp_path_factory):
    """(base folder, adapter folder) of one family, built once per module."""
    where = tmp_path_factory.mktemp(request.param)
    base, modules = tiny_base(request.param, where / "base")
    targets = [modules["attn"][0], modules["mlp"][-1]]  # one attention and one MLP projection
    return base, seq_cls_adapter(base, targets, where / "adapter")


def test_an_imported_adapter_scores_as_transformers_and_peft_do(published, tmp_path):
    base, adapter = published
    run_file = small_run(tmp_path / "bm25.trec")
    result = rerank.rerank([f"checkpoint={adapter}", f"run={run_file}", *FILES, "depth=4", *into(tmp_path)])
    pairs, ours = pairs_and_scores(result["run"])
    expected = reference_scores(base, adapter, pairs, "tevatron", 196, RANKLLAMA)
    assert len(pairs) == 12
    assert max(abs(a - b) for a, b in zip(ours, expected)) < 1e-4
    assert max(abs(s) for s in expected) > 1e-2  # the scores are not all zero: the comparison means something


def test_an_exported_checkpoint_loads_in_transformers_and_peft_with_equal_scores(published, tmp_path):
    """Export direction for each family: the imported checkpoint (a project checkpoint on a hub-layout base)
    exported again scores the same through the published loading path."""
    base, adapter = published
    run_file = small_run(tmp_path / "bm25.trec", queries=2)
    imported = rerank.rerank([f"checkpoint={adapter}", f"run={run_file}", *FILES, "depth=4", *into(tmp_path)])
    checkpoint = next((tmp_path / "imp").glob("*/checkpoints/step-*"))
    out = export.export([f"checkpoint={checkpoint}", f"out={tmp_path / 'exported'}"])
    assert json.loads((out / "adapter_config.json").read_text())["task_type"] == "SEQ_CLS"
    pairs, ours = pairs_and_scores(imported["run"])
    expected = reference_scores(base, out, pairs, "tevatron", 196, RANKLLAMA)
    assert max(abs(a - b) for a, b in zip(ours, expected)) < 1e-4


def test_a_trained_job_exports_with_its_own_template_and_base(trained_tiny_job, tmp_path):
    folder = JobFolder(trained_tiny_job).checkpoint(4)
    out = export.export([f"checkpoint={folder}", f"out={tmp_path / 'exported'}"])
    info = json.loads((out / "rerank_lora.json").read_text())
    assert info["template"] == "rerank_lora" and info["step"] == 4
    written = read_run(JobFolder(trained_tiny_job).run_file("dev", 4))  # the job's own scores, 6 decimals
    pairs = [(q, p) for q in list(written)[:3] for p in written[q]]
    expected = reference_scores(out / "base", out, pairs, "rerank_lora", info["max_length"])
    assert max(abs(written[q][p] - e) for (q, p), e in zip(pairs, expected)) < 1e-4


def test_rerank_of_the_jobs_first_stage_reproduces_the_jobs_metrics_exactly(trained_tiny_job, tmp_path):
    job = JobFolder(trained_tiny_job)
    result = rerank.rerank([
        f"checkpoint={job.checkpoint(4)}", f"run={job.run_file('dev', None)}", *FILES, f"qrels={MINI / 'qrels.tsv'}",
        "depth=10", f"out={tmp_path / 'reranked.trec'}",
    ])
    logged = model_metrics(trained_tiny_job)[("dev", 4)]
    assert result["reranked"] == {k: logged[k] for k in result["reranked"]}
    assert read_run(tmp_path / "reranked.trec") == read_run(job.run_file("dev", 4))
    rows = map(json.loads, job.metrics_file.read_text().splitlines())
    first_stage = next(r for r in rows if r["ranker"] == "first-stage" and r["split"] == "dev")
    assert result["input"] == {k: first_stage[k] for k in result["input"]}


def test_every_analysis_tool_runs_on_an_imported_adapter(tmp_path_factory):
    where = tmp_path_factory.mktemp("tools")
    base, modules = tiny_base("tiny_llama", where / "base")
    adapter = seq_cls_adapter(base, modules["attn"] + modules["mlp"], where / "checkpoint-50")
    common = [f"checkpoint={adapter}", f"imported_dir={where / 'imp'}", "logger=none"]
    _, table = ablate.ablate([*common, "ablation=modules", "split=dev", "depth=10"])  # the job's measures are cut at 10
    variants = [row["variant"] for row in read_csv(table)]
    assert len(variants) >= 3 and table.parent.name == "step-50"  # the Trainer's checkpoint-50 is step 50
    (probes,) = probe.probe([*common, "split=dev", "depth=10"])
    assert [row["layer"] for row in read_csv(probes)] == [0, 1]  # the head read after each of the two layers
    (stats,) = adapter_stats.adapter_stats(common)
    assert len(read_csv(stats)) == 2 * 7  # two layers x seven projections


@pytest.fixture(scope="module")
def llama_adapter(tmp_path_factory):
    where = tmp_path_factory.mktemp("bad")
    base, modules = tiny_base("tiny_llama", where / "base")
    pythia, _ = tiny_base("tiny_pythia", where / "pythia")
    return seq_cls_adapter(base, modules["attn"], where / "adapter"), pythia


@pytest.mark.parametrize(
    "change, message",
    [
        ("no_config", "no adapter_config.json"),
        ("other_base", "is not under"),
        ("template", "template='chatml'; accepted: rerank_lora, tevatron, rankllama_v1"),
        ("unknown_qid", "match nothing in"),
    ],
)
def test_bad_published_input_is_one_clear_error_and_no_run_file(llama_adapter, tmp_path, change, message):
    adapter, pythia = llama_adapter
    run_file = small_run(tmp_path / "bm25.trec", queries=1)
    args = [f"checkpoint={adapter}", f"run={run_file}", *FILES, f"out={tmp_path / 'out.trec'}"]
    args.append(f"imported_dir={tmp_path / 'imp'}")
    if change == "no_config":
        (tmp_path / "bare").mkdir()
        (tmp_path / "bare" / "adapter_model.safetensors").write_bytes((adapter / "adapter_model.safetensors").read_bytes())
        args[0] = f"checkpoint={tmp_path / 'bare'}"
    elif change == "other_base":
        args.append(f"base={pythia}")
    elif change == "template":
        args.append("template=chatml")
    else:
        run_file.write_text(run_file.read_text() + "no-such-query Q0 7067032 5 1.0 bm25\n")
    with pytest.raises(InputError, match=message):
        rerank.rerank(args)
    assert not (tmp_path / "out.trec").exists()


def test_offline_hub_reference_names_the_id_and_how_to_fetch_it(tmp_path):
    result = run_module(
        "rerank_lora.rerank",
        ["checkpoint=hf:AtharvaNijasureUMass/finegrained_checkpoint_experiment_llama3_r8", f"run={MINI / 'candidates.tsv'}",
         *FILES, f"out={tmp_path / 'out.trec'}"],
        tmp_path,
        env={"HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf")},
    )
    assert result.returncode == 1
    (line,) = result.stderr.strip().splitlines()[-1:]
    assert line.startswith("error: checkpoint=hf:AtharvaNijasureUMass/finegrained_checkpoint_experiment_llama3_r8")
    assert "huggingface-cli download AtharvaNijasureUMass/finegrained_checkpoint_experiment_llama3_r8" in line
    assert "Traceback" not in result.stderr and not (tmp_path / "out.trec").exists()
