"""Ablations without retraining, on a tiny trained adapter: the switch is exact (everything off scores like the
base model with the same head, nothing off like the adapter), restores the model bit for bit, and the CLI
writes its tables beside the checkpoint or fails with one clear error and no finished-looking file."""

import sys

import pytest
import torch

from conftest import ONE_THREAD, metrics_rows, run_module
from rerank_lora import ablate
from rerank_lora.analysis.lora_switch import LoraSwitch
from rerank_lora.analysis.prefix_sharing import PrefixSharingScorer
from rerank_lora.analysis.trained_job import TrainedJob
from rerank_lora.analysis.variants import compact
from rerank_lora.data.trec_files import read_run
from rerank_lora.evaluation.evaluator import score
from rerank_lora.job_folder import JobFolder
from rerank_lora.model.backbone import load_backbone
from rerank_lora.model.reranker import Reranker
from rerank_lora.tables import read_csv


@pytest.fixture(scope="module")
def job_dir(trained_tiny_job):
    return trained_tiny_job


def checkpoint(job_dir, step: int):
    return JobFolder(job_dir).checkpoint(step)


@pytest.fixture(scope="module")
def loaded(job_dir):
    job = TrainedJob(checkpoint(job_dir, 4), ["dev"])
    return job, LoraSwitch(job.reranker.backbone), job.data.eval_batches("dev")


def as_tensor(run, pairs):
    return torch.tensor([run[q][p] for q, p in pairs], dtype=torch.float64)


@pytest.mark.parametrize("merge", [True, False])
def test_everything_off_scores_exactly_like_the_base_model_with_the_same_head(loaded, merge):
    job, switch, batches = loaded
    off = switch.score(job.reranker, batches, on=[], merge=merge)
    base, _ = load_backbone(job.model)
    plain = Reranker(base, 1, None)
    plain.load_head(job.folder)
    reference = score(plain, batches, merge=False)
    pairs = [(q, p) for q in reference for p in reference[q]]
    assert torch.allclose(as_tensor(off, pairs), as_tensor(reference, pairs), atol=1e-6, rtol=0)


@pytest.mark.parametrize("merge", [True, False])
def test_nothing_off_scores_exactly_like_the_adapter(loaded, job_dir, merge):
    job, switch, batches = loaded
    on = switch.score(job.reranker, batches, on=switch.sites, merge=merge)
    reference = score(job.reranker, batches)  # the evaluator's own path (peft merge_adapter)
    written = read_run(JobFolder(job_dir).run_file("dev", 4))  # written during training, 6 decimals
    pairs = [(q, p) for q in written for p in written[q]]
    assert torch.allclose(as_tensor(on, pairs), as_tensor(reference, pairs), atol=1e-6, rtol=0)
    assert torch.allclose(as_tensor(on, pairs), as_tensor(written, pairs), atol=1e-5, rtol=0)


def test_partial_switches_change_scores_and_restore_the_model_bit_for_bit(loaded):
    job, switch, batches = loaded
    before = {k: v.clone() for k, v in job.reranker.state_dict().items()}
    grads = [p.requires_grad for p in job.reranker.parameters()]
    full = switch.score(job.reranker, batches, on=switch.sites)
    none = switch.score(job.reranker, batches, on=[])
    layer0 = switch.score(job.reranker, batches, on=switch.where(layers=[0]))
    attn = switch.score(job.reranker, batches, on=switch.where(projections=["q_proj", "k_proj", "v_proj", "o_proj"]))
    pairs = [(q, p) for q in full for p in full[q]]
    for variant in (layer0, attn):
        assert (as_tensor(variant, pairs) - as_tensor(full, pairs)).abs().max() > 1e-5
        assert (as_tensor(variant, pairs) - as_tensor(none, pairs)).abs().max() > 1e-5
    after = job.reranker.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert [p.requires_grad for p in job.reranker.parameters()] == grads
    assert not any(m.disable_adapters or m.merged for m in switch.modules.values())
    assert switch.layers == [0, 1] and len(switch.sites) == 14


def test_ablate_writes_modules_layers_and_boundary_tables(job_dir):
    folder = checkpoint(job_dir, 4)
    written = ablate.ablate([f"checkpoint={job_dir}", "ablation=[modules,layers,boundary]", "boundary.queries=8"])
    assert {p.name for p in written} == {
        f"ablation-{n}{s}" for n in ("modules", "layers", "boundary") for s in (".csv", ".queries.jsonl")
    }
    reference = {r["split"]: r for r in metrics_rows(job_dir) if r["step"] == 4}
    modules = {r["variant"]: r for r in read_csv(folder / "ablation-modules.csv")}
    assert {"all", "none", "attn-only", "mlp-only", "drop:q_proj", "keep:down_proj"} <= set(modules)
    assert len(modules) == 4 + 2 * 7
    assert modules["all"]["nDCG@10"] == pytest.approx(reference["dev"]["nDCG@10"], abs=1e-9)
    assert modules["all"]["delta_nDCG@10"] == 0 and modules["none"]["sites_on"] == 0
    assert modules["attn-only"]["projections_on"] == "q_proj+k_proj+v_proj+o_proj" and modules["attn-only"]["sites_on"] == 8
    assert all(0 <= r["p_nDCG@10"] <= 1 for v, r in modules.items() if v != "all")
    layers = {r["variant"]: r for r in read_csv(folder / "ablation-layers.csv")}
    assert set(layers) == {"all", "none", "drop-layer:0", "drop-layer:1", "keep-layers:0-0", "keep-layers:1-1"}
    # keeping only layer 0 is dropping layer 1
    assert layers["keep-layers:0-0"]["nDCG@10"] == layers["drop-layer:1"]["nDCG@10"]
    assert layers["none"]["nDCG@10"] == modules["none"]["nDCG@10"]
    # the structured columns say what the name says: a kept window's first and last layer, a dropped layer
    windows = {v: r for v, r in layers.items() if r["window_start"] is not None}
    assert set(windows) == {"keep-layers:0-0", "keep-layers:1-1"}
    for variant, r in windows.items():
        kept = range(r["window_start"], r["window_end"] + 1)
        assert variant == f"keep-layers:{r['window_start']}-{r['window_end']}" and r["layer"] is None
        assert str(r["layers_on"]) == compact(kept) and r["sites_on"] == 7 * len(kept)
    assert all(r["window_end"] is None for v, r in layers.items() if v not in windows)
    assert {r["layer"] for v, r in layers.items() if v.startswith("drop-layer:")} == {0, 1}
    assert all(r["window_start"] is None and r["window_end"] is None for r in modules.values())
    boundary = read_csv(folder / "ablation-boundary.csv")
    select = [r for r in boundary if r["role"] == "select"]
    assert [r["layer"] for r in select] == [-1, 0, 1] and all(r["queries"] == 8 for r in select)
    assert sum(r["chosen"] for r in select) == 1
    report = {r["variant"]: r for r in boundary if r["role"] == "report"}
    assert all(r["split"] == "test" and r["queries"] == 54 for r in report.values())
    assert report["boundary:1"]["nDCG@10"] == pytest.approx(reference["test"]["nDCG@10"], abs=1e-9)
    lines = (folder / "ablation-layers.queries.jsonl").read_text().splitlines()
    assert len(lines) == 6 * 43


def test_ablation_cli_logs_a_wandb_table(job_dir, tmp_path):
    result = run_module(
        "rerank_lora.ablate",
        [f"checkpoint={checkpoint(job_dir, 2)}", "ablation=layers", "logger=wandb"],
        tmp_path,
        ONE_THREAD,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert (checkpoint(job_dir, 2) / "ablation-layers.csv").is_file()
    assert "drop-layer:1" in result.stdout
    (run_dir,) = list((job_dir / "wandb").glob("offline-run-*"))  # offline, in the job's folder
    assert b"ablation-layers/step-2" in next(run_dir.glob("*.wandb")).read_bytes()
    tables = [p.read_text() for p in run_dir.glob("files/media/table/*.table.json")]
    assert len(tables) == 2 and all("drop-layer:1" in t for t in tables)  # the table and its chart


def test_a_failed_ablation_leaves_no_finished_looking_table(job_dir, monkeypatch):
    folder = checkpoint(job_dir, 0)
    calls = []

    def failing(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise RuntimeError("interrupted")
        return original(self, *args, **kwargs)

    original = PrefixSharingScorer._forward  # the ablation's scoring (share_prefix=true)
    monkeypatch.setattr(PrefixSharingScorer, "_forward", failing)
    with pytest.raises(RuntimeError):
        ablate.ablate([f"checkpoint={folder}", "ablation=layers"])
    assert not [p.name for p in folder.iterdir() if "ablation" in p.name]


@pytest.mark.parametrize(
    "args,phrase",
    [
        (["ablation=neurons"], "ablation="),
        (["ablation=windows", "windows.stride=0"], "windows.stride=0"),
        (["checkpoint=/nonexistent/job", "ablation=layers"], "/nonexistent/job"),
        (["ablation=layers", "window=3"], "unknown argument 'window'"),
        (["ablation=windows", "windows=3"], "windows is a group of options; set windows.width, windows.stride"),
        (["ablation=boundary", "boundary.measure=P@5"], "boundary.measure"),
        (["ablation=layers", "logger=tensorboard"], "logger="),
        (["ablation=layers", "layers.window=0"], "layers.window=0"),
        (["ablation=boundary", "boundary.queries=many"], "boundary.queries="),
        (["ablation=heads", "heads.layers=[1,7]"], "heads.layers=[1, 7]: [7] not adapted; accepted: layers of 0-1"),
        (["ablation=heads", "heads.layers=[-1]"], "heads.layers=-1"),
        (["ablation=modules", "queries=0"], "queries=0"),
        (["ablation=modules", "measures=[nDCG@10,P@100]"], "measure P@100 is cut at 100"),
        (["ablation=modules", "measures=[Recall]"], "measure 'Recall'"),
    ],
)
def test_bad_input_gives_one_error_line_and_no_table(job_dir, monkeypatch, capsys, args, phrase):
    folder = checkpoint(job_dir, 0)
    if not any(a.startswith("checkpoint=") for a in args):
        args = [f"checkpoint={folder}", *args]
    monkeypatch.setattr(sys, "argv", ["ablate", *args])
    with pytest.raises(SystemExit) as exit_info:
        ablate.main()
    message = str(exit_info.value.code)
    assert message.startswith("error: ") and phrase in message and "\n" not in message
    assert not [p.name for p in folder.iterdir() if "ablation" in p.name]


def test_cli_error_is_one_line_on_stderr(tmp_path):
    result = run_module("rerank_lora.ablate", ["checkpoint=nowhere", "ablation=layers"], tmp_path, ONE_THREAD)
    assert result.returncode != 0
    assert [line for line in result.stderr.splitlines() if line.strip()] == [
        "error: checkpoint=nowhere: no such folder; give <job>/checkpoints/step-N, a job folder, a peft adapter folder, hf:ID"
    ]
