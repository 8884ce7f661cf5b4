"""The sweep report on a tiny 2 x 2 grid (rank 1, 2 x attention, MLP LoRA) with ablations, probes, attention
features and adapter statistics: `make report` writes one static HTML file whose every image loads in headless Chromium and whose
tables carry Holm-corrected paired tests."""

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ONE_THREAD, ROOT, TINY, job_dirs, run_module
from rerank_lora import ablate, adapter_stats, attention, probe, report
from rerank_lora.data.trec_files import read_qrels, read_run
from rerank_lora.evaluation import metrics
from rerank_lora.evaluation.significance import compare, holm, paired_t, per_query
from rerank_lora.reporting.page import Page

TABLES = (
    "cells-table",
    "first-stage-tests",
    "rank-tests",
    "target-tests",
    "ablation-layers",
    "ablation-modules",
    "boundary-table",
    "probe-table",
    "attention-table",
    "adapter-table",
)
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
]
# Appended to a copy of the report: after the page has loaded, write each image's load status into the DOM.
IMAGE_CHECK = """<script>window.addEventListener('load', function () {
  var out = document.createElement('pre'); out.id = 'image-check';
  out.textContent = JSON.stringify(Array.from(document.images).map(function (i) { return [i.alt, i.complete, i.naturalWidth]; }));
  document.body.appendChild(out);
});</script>"""


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    cwd = tmp_path_factory.mktemp("sweep")
    result = run_module("rerank_lora.run", ["-m", *TINY, "lora.rank=1,2", "targets=attn,mlp"], cwd, ONE_THREAD)
    assert result.returncode == 0, result.stderr[-3000:]
    jobs = job_dirs(cwd)
    assert len(jobs) == 4
    ablate.ablate([f"checkpoint={jobs[0]}", "ablation=[modules,layers,boundary,heads,windows]", "boundary.queries=8"])
    ablate.ablate([f"checkpoint={jobs[1]}", "ablation=layers"])
    probe.probe([f"checkpoint={jobs[0]}", "fit=true", "fit_groups=8"])
    attention.attention([f"checkpoint={jobs[0]}", "queries=4"])
    for job in jobs:
        adapter_stats.adapter_stats([f"checkpoint={job}"])
    return jobs[0].parent


@pytest.fixture(scope="module")
def made(sweep):
    """`make report SWEEP=...` (its setup prerequisite taken as done: the venv running this test)."""
    command = [
        "make",
        "-s",
        "-C",
        str(ROOT),
        "-o",
        ".venv/.installed",
        "report",
        f"SWEEP={sweep}",
        f"BIN={Path(sys.executable).parent}",
        "ARGS=",  # not the ARGS of a `make test ARGS=...` that started this test
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300, env={**os.environ, **ONE_THREAD})
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    path = sweep / "report.html"
    assert f"wrote {path}" in result.stdout
    return path


def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if not found:
        pytest.skip("chromium is not installed: run scripts/install-chromium.sh (make chromium)")
    return found


def test_every_image_of_the_report_loads_in_headless_chromium(made, tmp_path):
    browser = chromium()
    page = made.read_text()
    images = len(re.findall(r"<img ", page))
    assert images >= 10 and "http://" not in page and "https://" not in page  # offline: nothing to fetch
    checked = tmp_path / "check.html"
    checked.write_text(page.replace("</body>", IMAGE_CHECK + "</body>"))
    profile = tmp_path / "profile"
    profile.mkdir()
    result = subprocess.run(
        [browser, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--dump-dom", checked.as_uri()],
        capture_output=True,
        text=True,
        timeout=120,
    )
    found = re.search(r'<pre id="image-check">(.*?)</pre>', result.stdout, re.S)
    assert found, result.stderr[-2000:]
    status = json.loads(found.group(1).replace("&quot;", '"').replace("&amp;", "&"))
    assert len(status) == images
    assert all(complete and width > 0 for _, complete, width in status), status
    for table in TABLES:
        assert f'<table id="{table}">' in result.stdout, table
    shot = made.with_name("report.png")  # for people: what the report looks like
    subprocess.run(
        [
            browser,
            *CHROMIUM_FLAGS,
            f"--user-data-dir={profile}",
            "--window-size=1300,2400",
            f"--screenshot={shot}",
            made.as_uri(),
        ],
        capture_output=True,
        timeout=120,
    )
    assert shot.is_file() and shot.stat().st_size > 10_000


def rows_of(page: str, table: str) -> list[list[str]]:
    body = re.search(rf'<table id="{table}">.*?<tbody>(.*?)</tbody>', page, re.S).group(1)
    return [re.findall(r"<td[^>]*>(.*?)</td>", row) for row in re.findall(r"<tr>(.*?)</tr>", body)]


def test_report_compares_ranks_and_targets_with_holm_corrected_tests(made):
    page = made.read_text()
    cells = rows_of(page, "cells-table")
    assert [c[0] for c in cells] == [
        "first stage",
        "tiny_llama r1 attn",
        "tiny_llama r2 attn",
        "tiny_llama r1 mlp",
        "tiny_llama r2 mlp",
    ]
    ranks = rows_of(page, "rank-tests")
    assert {(r[0], r[2], r[4]) for r in ranks} == {
        (f"tiny_llama r1 {t}", f"tiny_llama r2 {t}", s) for t in ("attn", "mlp") for s in ("dev", "test")
    }
    targets = rows_of(page, "target-tests")
    assert {(r[0], r[2]) for r in targets} == {(f"tiny_llama r{k} attn", f"tiny_llama r{k} mlp") for k in (1, 2)}
    assert all(r[5] in ("43", "54") and 0 <= float(r[7]) <= 1 for r in ranks + targets)
    assert all(r[1] == r[3] == "2" for r in ranks + targets)  # both at the final checkpoint, said in the table
    assert len(rows_of(page, "boundary-table")) == 1 and len(rows_of(page, "probe-table")) == 4
    assert not re.search(r"No [\w.-]+ found", page)  # every section found its tables


def test_per_query_values_average_to_the_reported_metrics_and_holm_is_step_down():
    from conftest import MINI

    qrels = read_qrels(MINI / "qrels.tsv")
    run = {q: s for q, s in read_run(MINI / "candidates.tsv").items() if q in qrels}
    names = ["nDCG@10", "RR(rel=2)@10"]
    values, means = per_query(qrels, run, names), metrics.compute(qrels, run, names)
    for name in names:
        assert sum(values[name].values()) / len(values[name]) == pytest.approx(means[name], abs=1e-12)
    assert holm([0.01, 0.04, 0.03, float("nan")])[:3] == pytest.approx([0.03, 0.06, 0.06])
    assert paired_t({"a": 1, "b": 0.5}, {"a": 1, "b": 0.5})[1] == 1.0


def test_compare_holm_corrects_over_the_pairs_it_compares():
    a = {"nDCG@10": {"q1": 1.0, "q2": 0.5, "q3": 0.0}}
    b = {"nDCG@10": {"q1": 0.5, "q2": 0.25, "q3": 0.25}}
    found = [d["nDCG@10"] for d in compare([(a, b), None, (a, a)], ["nDCG@10"])]
    delta, p, queries = paired_t(a["nDCG@10"], b["nDCG@10"])
    assert (found[0].delta, found[0].queries) == (pytest.approx(delta), queries) and queries == 3
    assert [d.p for d in found] == pytest.approx(holm([p, float("nan"), 1.0]), nan_ok=True)
    assert found[1].queries == 0 and found[1].delta != found[1].delta  # not compared: NaN, not counted


@pytest.mark.parametrize(
    "args,phrase",
    [
        (["sweep=/nonexistent"], "no such folder"),
        ([], "missing sweep"),
        (["sweep="], "missing sweep"),
        (["sweep=."], "no job folders"),
    ],
)
def test_bad_input_is_one_error_line(args, phrase, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", ["report", *args])
    with pytest.raises(SystemExit) as exit_info:
        report.main()
    assert str(exit_info.value.code).startswith("error: ") and phrase in str(exit_info.value.code)


def test_the_page_escapes_every_text_and_highlights_by_column_name():
    page = Page("report <1>")
    page.section("cells", "A & B", "intro <b>")
    rows = [{"cell": "<x>", "p": 0.01, "other": 0.01}, {"cell": "y", "p": 0.5}, {"cell": "z", "p": float("nan")}]
    page.table("t", ["cell", "p", "other"], rows, highlight={"p": lambda v: v < 0.05}, caption="<c>")
    text = page.html("sub <i>")
    assert not re.search(r"<(x|b|i|c|1)>", text) and "&lt;x&gt;" in text and "A &amp; B" in text
    assert text.count('class="sig"') == 1 and re.search(r'<td class="sig">0\.0100</td><td class="">0\.0100</td>', text)


@pytest.fixture(scope="module")
def held_out_report(tmp_path_factory):
    """A tiny 2 x 2 grid evaluated on dev at steps 0 and 2, test held out (scored at step 0 and at the checkpoint
    chosen on dev), and its report."""
    cwd = tmp_path_factory.mktemp("held-out-sweep")
    args = ["-m", *TINY, "data.eval_splits=[dev]", "data.held_out_splits=[test]", "lora.rank=1,2", "targets=attn,mlp"]
    result = run_module("rerank_lora.run", args, cwd, ONE_THREAD)
    assert result.returncode == 0, result.stderr[-3000:]
    jobs = job_dirs(cwd)
    return jobs, report.report([f"sweep={jobs[0].parent}"]).read_text()


def test_a_held_out_split_is_compared_at_each_cells_chosen_checkpoint(held_out_report):
    from rerank_lora.evaluation.selection import chosen_step

    jobs, page = held_out_report
    chosen = {}
    for job in jobs:
        rows = [json.loads(line) for line in (job / "metrics.jsonl").read_text().splitlines()]
        step = chosen_step(rows, "dev", "nDCG@10")
        value = next(r["nDCG@10"] for r in rows if (r["split"], r["step"], r["ranker"]) == ("test", step, "model"))
        chosen[step, round(value, 4)] = job
    header = re.search(r'<table id="cells-table">.*?<thead>(.*?)</thead>', page, re.S).group(1)
    columns = re.findall(r"<th[^>]*>(.*?)</th>", header)
    step_at, value_at = columns.index("test chosen step"), columns.index("test nDCG@10")
    cells = rows_of(page, "cells-table")[1:]
    assert len(cells) == 4
    assert {(int(c[step_at]), float(c[value_at])) for c in cells} == set(chosen)  # every cell, at its own choice
    tests = [r for table in ("first-stage-tests", "rank-tests", "target-tests") for r in rows_of(page, table)]
    on_test = [r for r in tests if r[4] == "test"]
    assert len(on_test) == 4 + 4 + 2 + 2 and all(r[5] == "54" for r in on_test)  # the shipped DL20's 54 queries
    against_step_0 = [r for r in on_test if r[2].endswith("at step 0")]
    assert len(against_step_0) == 4 and all(r[3] == "0" for r in against_step_0)
