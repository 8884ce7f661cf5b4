"""Bad input: one clear error naming the key (or file and line) and what is accepted, and no folder
that looks finished."""

import json

import pytest

from conftest import MINI, TINY, job_dirs


def assert_clean_failure(result, cwd, *phrases):
    assert result.returncode != 0
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.stderr[-2000:]
    for phrase in phrases:
        assert phrase in errors[0], errors[0]
    assert "Traceback" not in result.stderr
    for job in job_dirs(cwd):
        assert not (job / "metrics.jsonl").exists()
        assert json.loads((job / "status.json").read_text())["status"] == "failed"


@pytest.mark.parametrize(
    "overrides,phrases",
    [
        (["model=tiny_pythia", "targets.modules=[q_proj,v_proj]"], ["q_proj", "query_key_value", "dense_h_to_4h"]),
        (["targets.modules=everything"], ["targets.modules", "attn, mlp, all"]),
        (["lora.rank=0"], ["lora.rank=0", ">= 1"]),
        (["lora.layers=[0,5]"], ["lora.layers", "[5]", "0..1"]),
        (["schedule.steps=[2,50]"], ["schedule.steps", "[50]", "max_steps=4"]),
        (["data.negatives=[hard]"], ["data.negatives", "triples", "random"]),
        (["data.eval_splits=[validation]"], ["validation", "dev"]),
        (["measures=[nDGC@10]"], ["nDGC@10"]),
        (["measures=[nDCG@10,nDCG@20]"],
         ["measure nDCG@20 is cut at 20 but the run is reranked to depth 10", "cutoffs <= 10", "data.eval_depth >= 20"]),
        (["lora.rank=abc"], ["lora.rank='abc'", "an integer >= 1"]),
        (["lora.dropout=1.5"], ["lora.dropout=1.5", "0 <= dropout < 1"]),
        (["data.eval_depth=0"], ["data.eval_depth=0", "an integer >= 1"]),
        (["data.group_size=1"], ["data.group_size=1", "an integer >= 2", "softmax loss zero"]),
        (["data.max_length=5"], ["data.max_length=5", "shorter than the rerank_lora template", "accepted: >="]),
        (["data.template=chatml"], ["data.template='chatml'", "rerank_lora, tevatron, rankllama_v1"]),
        (["data.held_out_splits=[dev]"], ["data.held_out_splits=['dev']", "['dev']", "not in data.eval_splits"]),
        (["data.eval_splits=[dev]", "data.held_out_splits=[test]", "select_by=MRR"], ["select_by='MRR'", "nDCG@10"]),
        (["data.eval_splits=[dev]", "data.held_out_splits=[valid]"], ["valid", "dev"]),
    ],
)
def test_bad_config_values(run, tmp_path, overrides, phrases):
    assert_clean_failure(run("rerank_lora.run", [*TINY, *overrides]), tmp_path, *phrases)


def test_unknown_model_lists_the_valid_ones(run, tmp_path):
    result = run("rerank_lora.run", [*TINY, "model=gpt5"])
    assert result.returncode != 0
    assert "gpt5" in result.stderr and "tiny_llama" in result.stderr and "smollm2" in result.stderr
    assert not list(tmp_path.glob("outputs/**/metrics.jsonl"))


def test_unknown_config_key_is_named(run, tmp_path):
    result = run("rerank_lora.run", [*TINY, "lora.rnak=2"])
    assert result.returncode != 0 and "rnak" in result.stderr
    assert not list(tmp_path.glob("outputs/**/metrics.jsonl"))


def copy_mini(tmp_path, name, transform):
    folder = tmp_path / "data"
    folder.mkdir(exist_ok=True)
    for file in MINI.glob("*"):
        (folder / file.name).write_bytes(file.read_bytes())
    path = folder / name
    path.write_text(transform(path.read_text()))
    return [f"data.{key}={folder / file}" for key, file in
            {"corpus": "corpus.jsonl", "queries": "queries.jsonl", "qrels": "qrels.tsv",
             "candidates": "candidates.tsv", "triples": "train_triples.tsv"}.items()]


def test_malformed_data_file_names_file_and_line(run, tmp_path):
    def break_line_2(text):
        lines = text.splitlines(keepends=True)
        return lines[0] + "broken line\n" + "".join(lines[2:])

    args = copy_mini(tmp_path, "qrels.tsv", break_line_2)
    assert_clean_failure(run("rerank_lora.run", [*TINY, *args]), tmp_path, "qrels.tsv:2", "malformed")


def test_bytes_that_are_not_utf8_are_named_with_their_line(run, tmp_path):
    args = copy_mini(tmp_path, "corpus.jsonl", lambda text: text)
    corpus = tmp_path / "data" / "corpus.jsonl"
    corpus.write_bytes(corpus.read_bytes() + b'{"pid": "x1", "text": "caf\xe9"}\n')
    lines = corpus.read_bytes().count(b"\n")
    assert_clean_failure(run("rerank_lora.run", [*TINY, *args]), tmp_path, f"corpus.jsonl:{lines}", "not UTF-8")


def test_a_sweep_override_of_an_unknown_key_is_one_error(run, tmp_path):
    result = run("rerank_lora.run", ["-m", *TINY, "lora.rnk=1,2"])
    assert result.returncode != 0 and "lora.rnk" in result.stderr and "Traceback" not in result.stderr
    assert not list(tmp_path.glob("outputs/**/metrics.jsonl"))


def test_data_trec_without_paths_names_the_missing_key(run, tmp_path):
    assert_clean_failure(run("rerank_lora.run", [*TINY, "data=trec"]), tmp_path, "data.corpus is required")


def test_missing_data_file_is_named(run, tmp_path):
    assert_clean_failure(run("rerank_lora.run", [*TINY, f"data.corpus={tmp_path / 'nowhere.jsonl'}"]), tmp_path, "nowhere.jsonl")


def test_candidate_queries_that_match_nothing_are_named(run, tmp_path):
    args = copy_mini(tmp_path, "candidates.tsv", lambda text: text + "999999 Q0 8182161 1 1.0 bm25\n")
    assert_clean_failure(run("rerank_lora.run", [*TINY, *args]), tmp_path, "candidates.tsv", "999999", "queries.jsonl")


def test_qrels_queries_that_match_nothing_are_named(run, tmp_path):
    args = copy_mini(tmp_path, "qrels.tsv", lambda text: text + "ghost_q 0 8182161 1\n")
    assert_clean_failure(run("rerank_lora.run", [*TINY, *args]), tmp_path, "qrels.tsv", "ghost_q")


def test_hub_model_without_network_fails_at_once_with_advice(run, tmp_path):
    env = {"HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "empty-hf-cache")}
    result = run("rerank_lora.run", [*TINY, "model=llama"], env)
    assert_clean_failure(result, tmp_path, "meta-llama/Llama-3.1-8B", "model.path")


def test_hub_code_path_loads_a_local_folder_of_the_same_shape(run, tmp_path):
    """model=mistral with model.path: the cluster loader, fed a tiny Mistral saved in hub layout."""
    from conftest import specs
    from rerank_lora.model.backbone import load_backbone

    model, tokenizer = load_backbone(specs(["model=tiny_mistral"])[0])
    model.save_pretrained(tmp_path / "local-mistral")
    tokenizer.save_pretrained(tmp_path / "local-mistral")
    args = [a for a in TINY if not a.startswith("model=")]
    result = run("rerank_lora.run", [*args, "model=mistral", f"model.path={tmp_path / 'local-mistral'}", "model.dtype=float32"])
    assert result.returncode == 0, result.stderr[-2000:]
    assert "model.path" not in result.stderr
    (job,) = job_dirs(tmp_path)
    assert json.loads((job / "status.json").read_text())["status"] == "completed"


def test_a_grid_of_ddp_cells_on_the_basic_launcher_is_refused(run, tmp_path):
    """Lightning would start each further rank on the whole grid's command line: refused before any training."""
    result = run("rerank_lora.run", ["-m", *TINY, "trainer=ddp", "trainer.accelerator=cpu", "trainer.devices=2"])
    assert result.returncode != 0 and "Traceback" not in result.stderr
    (job,) = job_dirs(tmp_path)
    status = json.loads((job / "status.json").read_text())
    assert status["status"] == "failed" and "hydra/launcher=slurm" in status["error"] and "basic launcher" in status["error"]
    assert not (job / "metrics.jsonl").exists()
