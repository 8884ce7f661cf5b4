"""Layer-wise probes and adapter statistics on a tiny trained adapter: the head on the last layer is the
reranker's own score, fitted probes run per layer at every checkpoint, and the update norms and effective
ranks match peft's own delta weights."""

import math
import sys

import pytest
import torch

from conftest import ONE_THREAD, metrics_rows, run_module
from rerank_lora import adapter_stats, probe
from rerank_lora.analysis.lora_switch import LoraSwitch
from rerank_lora.analysis.probing import Prober
from rerank_lora.analysis.trained_job import TrainedJob
from rerank_lora.analysis.update_stats import module_stats
from rerank_lora.job_folder import JobFolder
from rerank_lora.tables import read_csv


@pytest.fixture(scope="module")
def job_dir(trained_tiny_job):
    return trained_tiny_job


def test_the_head_on_the_last_layer_is_the_rerankers_own_score(job_dir):
    job = TrainedJob(JobFolder(job_dir).checkpoint(4), ["test"])
    rows = Prober(job, "test").rows()
    assert [(r["layer"], r["probe"]) for r in rows] == [(0, "head"), (1, "head")]
    reference = next(r for r in metrics_rows(job_dir) if r["step"] == 4 and r["split"] == "test")
    for measure in job.measures:
        assert rows[-1][measure] == pytest.approx(reference[measure], abs=1e-9)
    assert rows[0]["nDCG@10"] != rows[-1]["nDCG@10"]


def test_probe_cli_probes_every_checkpoint_with_fitted_probes(job_dir):
    written = probe.probe([f"checkpoint={job_dir}", "fit=true", "fit_groups=16"])
    assert [p.parent for p in written] == [JobFolder(job_dir).checkpoint(step) for step in (0, 2, 4)]
    for path in written:
        rows = read_csv(path)
        assert {(r["layer"], r["probe"]) for r in rows} == {(layer, kind) for layer in (0, 1) for kind in ("head", "fitted")}
        assert all(0 <= r["nDCG@10"] <= 1 and r["split"] == "dev" and r["depth"] == 10 for r in rows)
        assert all(r["fit_pairs"] == 64 for r in rows if r["probe"] == "fitted")
    last = {r["probe"]: r for r in read_csv(written[-1]) if r["layer"] == 1}
    reference = next(r for r in metrics_rows(job_dir) if r["step"] == 4 and r["split"] == "dev")
    assert last["head"]["nDCG@10"] == pytest.approx(reference["nDCG@10"], abs=1e-9)


def test_adapter_stats_match_peft_delta_weights(job_dir):
    job = TrainedJob(JobFolder(job_dir).checkpoint(4), ["dev"])
    switch = LoraSwitch(job.reranker.backbone)
    rows = {r["module"]: r for r in module_stats(job.folder)}
    assert len(rows) == len(switch.sites) == 14
    for site in switch.sites:
        delta = switch.modules[site].get_delta_weight("default").double()
        sv = torch.linalg.svdvals(delta)
        row = rows[site.name.removeprefix("base_model.model.")]
        assert (row["layer"], row["projection"], row["rank"], row["scaling"]) == (site.layer, site.projection, 8, 2.0)
        assert row["fro_norm"] == pytest.approx(float(delta.norm()), rel=1e-6)
        assert row["spectral_norm"] == pytest.approx(float(sv[0]), rel=1e-6)
        p = sv[sv > 1e-12 * sv[0]] / sv[sv > 1e-12 * sv[0]].sum()
        assert row["effective_rank"] == pytest.approx(math.exp(float(-(p * p.log()).sum())), rel=1e-4)
        assert 1 <= row["effective_rank"] <= 8
    # at step 0 B is zero: no update yet
    assert all(r["fro_norm"] == 0 and r["effective_rank"] == 0 for r in module_stats(JobFolder(job_dir).checkpoint(0)))


def test_adapter_stats_cli_writes_every_checkpoint_and_logs_wandb_tables(job_dir, tmp_path):
    result = run_module("rerank_lora.adapter_stats", [f"checkpoint={job_dir}", "logger=wandb"], tmp_path, ONE_THREAD)
    assert result.returncode == 0, result.stderr[-3000:]
    for step in (0, 2, 4):
        rows = read_csv(JobFolder(job_dir).checkpoint(step) / "adapter-stats.csv")
        assert len(rows) == 14 and {r["step"] for r in rows} == {step}
    runs = sorted((job_dir / "wandb").glob("offline-run-*"))
    names = b"".join(next(r.glob("*.wandb")).read_bytes() for r in runs)
    assert all(f"adapter-stats/step-{s}".encode() in names for s in (0, 2, 4))
    assert any("q_proj" in t.read_text() for r in runs for t in r.glob("files/media/table/*.table.json"))


@pytest.mark.parametrize("module", [probe, adapter_stats])
def test_bad_input_is_one_error_line(module, monkeypatch, tmp_path):
    monkeypatch.setattr(sys, "argv", ["x", f"checkpoint={tmp_path}/missing"])
    with pytest.raises(SystemExit) as exit_info:
        module.main()
    assert str(exit_info.value.code).startswith("error: checkpoint=") and "missing" in str(exit_info.value.code)
    monkeypatch.setattr(sys, "argv", ["x", f"checkpoint={tmp_path}", "layer=3"])
    with pytest.raises(SystemExit) as exit_info:
        module.main()
    assert str(exit_info.value.code).startswith("error: unknown argument 'layer'")
