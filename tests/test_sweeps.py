"""Grids from sweeps/: axes overridable, a failed cell counted and recorded, a re-run skips finished cells."""

from conftest import ROOT, TINY, metrics_rows, summary_rows

SWEEP = ["-m", "--config-dir", str(ROOT / "sweeps"), "--config-name", "paper", "trainer=cpu", *TINY]


def test_paper_grid_axes_are_overridable_and_a_failed_cell_is_counted(run, tmp_path):
    args = [*SWEEP, "model=tiny_llama", "lora.rank=1,0", "targets=attn", "hydra.sweep.dir=grid"]
    result = run("rerank_lora.run", args)
    assert result.returncode != 0
    assert "error: 1 of 2 cells failed" in result.stderr
    rows = summary_rows(tmp_path / "grid")
    failed = [r for r in rows if r["status"] == "failed"]
    assert len(failed) == 1 and "lora.rank=0" in failed[0]["error"] and "lora.rank=0" in failed[0]["overrides"]
    done = [r for r in rows if r["status"] == "completed"]
    assert {r["step"] for r in done if r["ranker"] == "model"} == {"0", "2"}
    assert all("lora.rank=1" in r["overrides"] and "targets=attn" in r["overrides"] for r in done)


def test_rerunning_a_sweep_skips_finished_cells(run, tmp_path):
    args = [*SWEEP, "model=tiny_mistral", "lora.rank=2", "targets=mlp,all", "hydra.sweep.dir=grid"]
    first = run("rerank_lora.run", args)
    assert first.returncode == 0, first.stderr[-2000:]
    jobs = sorted(p for p in (tmp_path / "grid").iterdir() if p.is_dir())
    assert len(jobs) == 2
    before = [metrics_rows(j) for j in jobs]
    again = run("rerank_lora.run", args)
    assert again.returncode == 0 and (again.stdout + again.stderr).count("skipping") == 2
    assert [metrics_rows(j) for j in jobs] == before
    assert len(summary_rows(tmp_path / "grid")) == len(before[0]) + len(before[1])
