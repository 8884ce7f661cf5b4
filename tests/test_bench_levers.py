"""bench_levers on a tiny model: each lever is measured alone on the job's overrides, its rates and ratio are
consistent, and bf16 is skipped (with the measured rates as the reason) on a CPU without bf16 instructions."""

import pytest

from rerank_lora.bench import levers as bench_levers
from rerank_lora.model import precision
from rerank_lora.model.precision import FEATURE_FLAGS


def test_each_lever_is_measured_alone_and_bf16_is_skipped_without_bf16_instructions(monkeypatch):
    levers = {"default": [], "padded batches": ["trainer.packed=false"], "bf16": ["trainer.precision=bf16-mixed"]}
    monkeypatch.setattr(bench_levers, "LEVERS", levers)
    no_bf16 = {"model_name": "a CPU", **dict.fromkeys(FEATURE_FLAGS, False)}
    monkeypatch.setattr(bench_levers, "cpu_features", lambda: no_bf16)
    monkeypatch.setattr(precision, "cpu_features", lambda: no_bf16)  # precision=auto decides as on such a CPU
    monkeypatch.setattr(bench_levers, "peaks", lambda gpu: {"32-true": 0.1, "bf16-mixed": 0.001})
    prepared, real_prepare = [], bench_levers.prepare

    def recording_prepare(overrides):
        prepared.append(real_prepare(overrides))
        return prepared[-1]

    monkeypatch.setattr(bench_levers, "prepare", recording_prepare)
    report = bench_levers.bench_levers(["model=tiny_llama"])
    assert [row["lever"] for row in report["rows"]] == ["default", "padded batches"]
    assert [job.reranker.packed for job in prepared] == [True, False]  # the lever, and only it, changed
    for row in report["rows"]:
        assert row["precision"] == "32-true" and row["scoring_pairs_per_s"] > 0 and row["training_pairs_per_s"] > 0
        assert row["training_to_scoring"] == pytest.approx(row["training_pairs_per_s"] / row["scoring_pairs_per_s"])
        assert row["scoring_fraction_of_peak"] > 0 and row["start_to_first_step_s"] > 0
    assert "no amx_bf16 or avx512_bf16" in report["skipped"]["bf16"] and "1.0 GFLOP/s vs fp32 100.0" in report["skipped"]["bf16"]
