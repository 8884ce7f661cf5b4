"""The cost plan (`python -m rerank_lora.plan`): the cells of a sweep composed without running them, their steps,
pairs and evaluations equal to what the jobs would do, FLOPs of 2·N·T with N counted independently on the
transformers model, LoRA's parameters as peft counts them, a cell too large for the GPU flagged, and bad input as
one error line."""

import json

import pytest
import torch
from transformers import AutoConfig, AutoModel

from conftest import MINI, ONE_THREAD, run_module
from rerank_lora import plan
from rerank_lora.configs import SWEEPS_DIR, compose_job, to_spec
from rerank_lora.data.pairs import pad
from rerank_lora.data.spec import DataSpec
from rerank_lora.data.trec_files import read_queries, read_run, top_k
from rerank_lora.errors import InputError
from rerank_lora.model import precision
from rerank_lora.model.lora import LoraSpec, add_lora, target_modules
from rerank_lora.planning import calibrate
from rerank_lora.planning.architecture import architecture, embedding_parameters, non_embedding_parameters
from rerank_lora.planning.tokens import TokenSample, find_tokenizer
from rerank_lora.train.schedule import checkpoint_steps

MINI_GRID = ["--config-dir", str(SWEEPS_DIR), "--config-name", "mini"]


def split_pairs(depth: int, split: str = "dev") -> int:
    """Pairs one evaluation of a shipped split (dev: DL19, test: DL20) scores, read from its files."""
    _, labels = read_queries(MINI / "queries.jsonl")
    run = read_run(MINI / "candidates.tsv")
    return sum(len(c) for c in top_k({q: s for q, s in run.items() if labels[q] in (split, None)}, depth).values())


def test_the_mini_grid_plans_what_its_jobs_do(capsys, tmp_path):
    assert plan.plan([*MINI_GRID, f"out={tmp_path / 'plan.json'}"]) == tmp_path / "plan.json"
    printed = capsys.readouterr().out
    assert printed.count("smollm2") >= 4 and "4 cells" in printed and "assumptions:" in printed
    report = json.loads((tmp_path / "plan.json").read_text())
    cells = report["cells"]
    assert [(c["rank"], c["targets"]) for c in cells] == [(2, "attn"), (2, "mlp"), (8, "attn"), (8, "mlp")]
    cfg = compose_job(cells[0]["overrides"], "mini", SWEEPS_DIR)
    checkpoints = checkpoint_steps(cfg.trainer.max_steps, **cfg.schedule)
    for cell in cells:
        assert cell["steps"] == cfg.trainer.max_steps == 80
        assert cell["training_pairs"] == 80 * cfg.data.queries_per_batch * cfg.data.group_size
        assert cell["checkpoints"] == checkpoints == [0, 40, 80]
        # DL19 at every checkpoint; DL20 (held out) at step 0 and at the checkpoint chosen on DL19
        assert cfg.data.eval_splits == ["dev"] and cfg.data.held_out_splits == ["test"]
        assert cell["evaluations"] == len(checkpoints) + 2 == 5
        assert cell["pairs_scored"] == 3 * split_pairs(cfg.data.eval_depth) + 2 * split_pairs(cfg.data.eval_depth, "test")
        assert cell["pairs_scored"] == 3 * 430 + 2 * 540
        assert cell["memory_gb"]["fits"]
    assert report["totals"]["training_pairs"] == 4 * 80 * 8


def test_an_inline_grid_and_a_command_line_axis_replacing_the_sweeps():
    report = plan.plan(["model=tiny_llama,tiny_pythia", "lora.rank=1,4", "targets=attn", "trainer.max_steps=5",
                        "trainer.accumulate_grad_batches=3", "schedule=paper", "schedule.every=2", "json=true"])
    cells = report["cells"]
    assert [(c["model"], c["rank"]) for c in cells] == [(m, r) for m in ("tiny_llama", "tiny_pythia") for r in (1, 4)]
    for cell in cells:
        assert cell["training_groups"] == 5 * 2 * 3 and cell["training_pairs"] == 5 * 2 * 3 * 4
        assert cell["checkpoints"] == [0, 2, 4] and cell["evaluations"] == 3 * 2  # the default data: dev and test
    narrowed = plan.plan([*MINI_GRID, "lora.rank=4", "json=true"])["cells"]
    assert [(c["rank"], c["targets"]) for c in narrowed] == [(4, "attn"), (4, "mlp")]


def tiny_backbone(name: str):
    cfg = compose_job([f"model={name}"])
    config = AutoConfig.for_model(cfg.model.family, vocab_size=49152, **cfg.model.config)
    return cfg, AutoModel.from_config(config)


def test_flops_of_a_tiny_model_are_2NT_with_N_counted_on_the_model():
    cfg, backbone = tiny_backbone("tiny_llama")
    parameters = sum(p.numel() for n, p in backbone.named_parameters() if "embed" not in n)
    job = ["model=tiny_llama", "lora.rank=4", "targets=all", "trainer.max_steps=6", "json=true"]
    (cell,) = plan.plan([*job, "trainer.packed=false"])["cells"]
    (packed,) = plan.plan(job)["cells"]  # the default: packed training batches compute no padding outside attention
    assert cell["non_embedding_parameters"] == parameters
    tokenizer, _, _ = find_tokenizer(dict(cfg.model), cfg.cache_dir)
    groups = TokenSample(to_spec(DataSpec, cfg.data, "data"), tokenizer, cfg.seed).data.train_set
    per_batch = cfg.data.queries_per_batch
    batches = [pad([p for k in range(s * per_batch, (s + 1) * per_batch) for p in groups.group(k)], 0) for s in range(6)]
    computed = sum(b["input_ids"].numel() for b in batches)  # padded to each batch's longest, as the job pads
    assert cell["training_tokens_padded"] == computed
    assert cell["training_tokens"] == sum(int(b["attention_mask"].sum()) for b in batches)
    assert packed["training_tokens_padded"] == packed["training_tokens"] == cell["training_tokens"] < computed
    assert packed["flops"]["train"] - packed["flops"]["train_matmul"] == cell["flops"]["train"] - cell["flops"]["train_matmul"]
    assert cell["step_passes"] == 2 and not cell["gradient_checkpointing"]
    assert cell["flops"]["train_matmul"] == pytest.approx(2 * 2 * parameters * computed)
    assert cell["flops"]["train"] > cell["flops"]["train_matmul"]  # + attention's quadratic term
    lora = add_lora(backbone, LoraSpec(rank=4), target_modules("all", dict(cfg.model.modules)))
    assert cell["lora_parameters"] == sum(p.numel() for p in lora.parameters() if p.requires_grad)


@pytest.mark.parametrize("name", ["llama", "mistral", "pythia", "smollm2", "tiny_pythia"])
def test_architecture_counts_equal_the_transformers_model(name):
    model = dict(compose_job([f"model={name}"]).model)
    arch = architecture(model, 49152)
    layers = {"num_hidden_layers": model["num_layers"]} if model.get("num_layers") else {}  # smollm2: its first 12
    config = AutoConfig.for_model(model["family"], **({"vocab_size": 49152} | dict(model["config"]) | layers))
    with torch.device("meta"):
        backbone = AutoModel.from_config(config)
    embedding = sum(p.numel() for n, p in backbone.named_parameters() if "embed" in n)
    assert embedding == embedding_parameters(arch)
    assert sum(p.numel() for p in backbone.parameters()) - embedding == non_embedding_parameters(arch)


def test_a_cell_too_large_for_the_gpu_is_flagged(capsys, tmp_path):
    huge = ["model=llama", "trainer=gpu", "trainer.max_steps=1", "data.queries_per_batch=512", "tokens_per_pair=100"]
    plan.plan([*huge, "trainer.gradient_checkpointing=false", f"out={tmp_path / 'plan.json'}"])
    assert "WILL NOT FIT" in capsys.readouterr().out
    (cell,) = json.loads((tmp_path / "plan.json").read_text())["cells"]
    memory = cell["memory_gb"]
    assert not memory["fits"] and memory["total_without_checkpointing"] > 80 and memory["capacity"] == 80
    assert memory["weights"] == pytest.approx((6_979_588_096 + 525_336_576) * 2 / 1e9)  # bf16
    (small,) = plan.plan(["model=llama", "trainer=gpu", "trainer.max_steps=1", "tokens_per_pair=100", "json=true"])["cells"]
    assert small["memory_gb"]["fits"] and small["gradient_checkpointing"] and small["step_passes"] == 3


def test_on_the_cpu_time_is_flops_at_the_calibrated_fractions_of_the_measured_rate(monkeypatch):
    monkeypatch.setattr(precision, "matmul_rate", lambda: 1e11)
    report = plan.plan([*MINI_GRID, "lora.rank=2", "targets=attn", "device=cpu", "json=true"])
    (cell,) = report["cells"]
    values = calibrate.CPU_CALIBRATION
    seconds = cell["seconds"]
    assert seconds["train"] == pytest.approx(cell["flops"]["train"] / (1e11 * values["train_utilisation"]))
    assert seconds["scoring"] == pytest.approx(cell["flops"]["scoring"] / (1e11 * values["scoring_utilisation"]))
    assert seconds["wall"] == pytest.approx(seconds["train"] + seconds["scoring"] + values["cell_overhead_s"])
    assert report["totals"]["wall_seconds"] == pytest.approx(seconds["wall"] + values["startup_s"])
    assert "100.0 GFLOP/s" in report["assumptions"]["rate"]


def test_data_that_is_not_local_counts_known_splits(tmp_path):
    args = ["data=msmarco", "trainer.max_steps=10", "schedule=final", "tokens_per_pair=100", f"out={tmp_path / 'plan.json'}"]
    assert plan.plan(args) == tmp_path / "plan.json"
    (cell,) = plan.plan([*args[:-1], "json=true"])["cells"]
    # data=msmarco: dev/small capped at 200 queries, DL19's 43 and DL20's 54 judged queries, each at depth 1000
    assert cell["pairs_scored"] == 2 * (200 + 43 + 54) * 1000
    assert cell["training_tokens"] == cell["training_pairs"] * 100


@pytest.mark.parametrize(
    ("args", "words"),
    [(["gpu=V100"], "gpu='V100'"), (["device=tpu"], "device='tpu'"), (["utilisation=2"], "utilisation=2"),
     (["model=nonexistent"], "nonexistent"), (["gpu"], "arguments are key=value"), (["--config-name", "nope"], "nope")],
)
def test_bad_input_is_an_input_error(args, words):
    with pytest.raises(InputError, match=words):
        plan.plan(args)


def test_bad_input_is_one_error_line(tmp_path):
    result = run_module("rerank_lora.plan", ["gpu=V100"], tmp_path, ONE_THREAD)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == ["error: gpu='V100'; accepted: H100, H200, A100"]
