"""Attention heads and windows kept or omitted (Perlman et al.'s keep and omit), on tiny adapters of three families:
a head's share of a LoRA update is exactly its slice (rows of q/k/v or GPT-NeoX's fused query_key_value, columns of
the output projection; with grouped KV, the key/value rows its group shares), keeping every head is the whole
attention update and omitting every head reverts it, the model is bit for bit itself afterwards, prefix sharing
scores the variants as the plain path does, and `ablate` writes the tables with paired tests (the margin too)."""

import json

import pytest
import torch
from test_prefix_sharing import random_batches, random_reranker

from rerank_lora import ablate, report
from rerank_lora.analysis.ablation import Ablation
from rerank_lora.analysis.head_slices import HeadLayout
from rerank_lora.analysis.lora_switch import LoraSwitch
from rerank_lora.analysis.prefix_sharing import PrefixSharingScorer
from rerank_lora.analysis.trained_job import TrainedJob
from rerank_lora.analysis.variants import attention_split, attention_window_variants, head_variants
from rerank_lora.data.trec_files import read_run
from rerank_lora.evaluation.metrics import ScoreMargin
from rerank_lora.job_folder import JobFolder
from rerank_lora.tables import read_csv

ATTENTION = {"tiny_llama": ["q_proj", "k_proj", "v_proj", "o_proj"], "tiny_pythia": ["query_key_value", "dense"]}
ATTENTION["tiny_mistral"] = ATTENTION["tiny_llama"]
# LLaMA with one KV head per query head, Mistral with 2 query heads per KV head, GPT-NeoX's fused projection
FAMILIES = {
    "tiny_llama": ["model.config.num_key_value_heads=4"],
    "tiny_mistral": [],
    "tiny_pythia": [],
}


def build(model_name: str, layers: int = 2):
    reranker = random_reranker(model_name, layers, *FAMILIES[model_name])
    switch = LoraSwitch(reranker.backbone)
    return reranker, switch, random_batches(pad_id=0, count=2)


def state(reranker) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in reranker.state_dict().items()}


@pytest.mark.parametrize("model_name", list(FAMILIES))
@pytest.mark.parametrize("merge", [True, False])
def test_every_head_kept_is_the_whole_update_every_head_omitted_reverts_it(model_name, merge):
    reranker, switch, batches = build(model_name)
    before, grads = state(reranker), [p.requires_grad for p in reranker.parameters()]
    attention, rest = attention_split(switch, ATTENTION[model_name])
    heads = range(switch.head_layout.heads)
    every_head = rest | {s.with_heads(heads) for s in attention}
    no_head = rest | {s.with_heads([]) for s in attention}
    whole, reverted = (switch.score(reranker, batches, on, merge) for on in (switch.sites, rest))
    assert switch.score(reranker, batches, every_head, merge) == whole
    assert switch.score(reranker, batches, no_head, merge) == reverted
    assert whole != reverted
    after = reranker.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert [p.requires_grad for p in reranker.parameters()] == grads


def merged_delta(switch, site) -> torch.Tensor:
    """The update `site` (a module, or some heads' share of it) adds to its module's weight."""
    weight = switch.modules[site.module_site].get_base_layer().weight
    base = weight.detach().clone()
    with switch.only([site]), switch.merged():
        return weight.detach().clone() - base


def head_slice(layout: HeadLayout, projection: str, head: int) -> tuple[str, set[int]]:
    """The rows or columns of `projection` that belong to query `head`, written out from the model's own layout."""
    d, group = layout.head_dim, layout.heads // layout.kv_heads
    if projection == "q_proj":
        return "rows", set(range(head * d, (head + 1) * d))
    if projection in ("k_proj", "v_proj"):
        kv = head // group
        return "rows", set(range(kv * d, (kv + 1) * d))
    if projection == "query_key_value":  # viewed as (heads, 3 * head_dim), then chunked into q, k, v
        return "rows", set(range(head * 3 * d, (head + 1) * 3 * d))
    return "columns", set(range(head * d, (head + 1) * d))


@pytest.mark.parametrize("model_name", list(FAMILIES))
def test_one_heads_share_is_its_slice_of_the_update(model_name):
    reranker, switch, _ = build(model_name)
    layout, head = switch.head_layout, 2
    for site in switch.where(layers=[1], projections=ATTENTION[model_name]):
        whole, share = merged_delta(switch, site), merged_delta(switch, site.with_heads([head]))
        axis, inside = head_slice(layout, site.projection, head)
        mask = torch.zeros(whole.shape[0 if axis == "rows" else 1], dtype=torch.bool)
        mask[sorted(inside)] = True
        share_in, whole_in = (share[mask], whole[mask]) if axis == "rows" else (share[:, mask], whole[:, mask])
        assert torch.allclose(share_in, whole_in, atol=1e-6) and whole_in.abs().max() > 1e-3, site
        assert not (share[~mask] if axis == "rows" else share[:, ~mask]).any(), site


def head_outputs(reranker, switch, batches, on, layer: int, projections) -> torch.Tensor:
    """Every head's attention output in `layer` (the output projection's input) over `batches`, LoRA on in `on`."""
    (output,) = [s for s in switch.where(layers=[layer], projections=projections[-1:])]
    seen = []
    hook = switch.modules[output].register_forward_hook(lambda module, args, out: seen.append(args[0].detach()))
    try:
        switch.score(reranker, batches, on)
    finally:
        hook.remove()
    return torch.cat([x.flatten(0, -2) for x in seen])


@pytest.mark.parametrize("model_name", list(FAMILIES))
def test_one_heads_share_changes_only_that_heads_outputs(model_name):
    reranker, switch, batches = build(model_name)
    layout, head, projections = switch.head_layout, 2, ATTENTION[model_name]
    inputs = switch.where(layers=[1], projections=projections[:-1])  # q, k, v (or fused)
    base = head_outputs(reranker, switch, batches, [], 1, projections)
    shared = {h for h in range(layout.heads) if layout.kv_head(h) == layout.kv_head(head)}
    cases = [(inputs, shared)]  # with grouped KV the key/value share reaches the group's heads
    if model_name != "tiny_pythia":
        cases.append((switch.where(layers=[1], projections=["q_proj"]), {head}))
    for sites, changed in cases:
        moved = head_outputs(reranker, switch, batches, {s.with_heads([head]) for s in sites}, 1, projections)
        by_head = (moved - base).abs().unflatten(-1, (layout.heads, layout.head_dim)).amax(dim=(0, 2))
        assert {h for h in range(layout.heads) if by_head[h] > 1e-5} == changed, by_head
        assert all(by_head[h] == 0 for h in range(layout.heads) if h not in changed), by_head
    if model_name == "tiny_mistral":
        assert shared == {2, 3}


@pytest.mark.parametrize("model_name", list(FAMILIES))
def test_prefix_sharing_scores_head_and_window_variants_as_the_plain_path(model_name):
    reranker, switch, batches = build(model_name, layers=3)
    attention = ATTENTION[model_name]
    variants = head_variants(switch, attention, switch.head_layout.heads) + attention_window_variants(switch, attention, 2, 1)
    plain = [switch.score(reranker, batches, v.on) for v in variants]
    reference = attention_split(switch, attention)[1]
    scorer = PrefixSharingScorer(switch, reranker, batches, references=[reference])
    starts = [start for _, start in scorer.plan([v.on for v in variants])]
    assert sum(s > 0 for s in starts) >= len(variants) // 2  # the kept heads start from the MLP-only reference
    assert scorer.runs([v.on for v in variants]) == plain
    assert len({str(run) for run in plain}) > len(variants) // 2


@pytest.fixture(scope="module")
def ablated(trained_tiny_job):
    """The tiny job's last checkpoint with its heads and windows ablated, and the files `ablate` wrote."""
    folder = JobFolder(trained_tiny_job).checkpoint(4)
    return folder, ablate.ablate([f"checkpoint={trained_tiny_job}", "ablation=[heads,windows]"])


def test_ablate_writes_heads_and_windows_tables(ablated):
    folder, written = ablated
    assert {p.name for p in written} == {f"ablation-{n}{s}" for n in ("heads", "windows") for s in (".csv", ".queries.jsonl")}
    heads = {r["variant"]: r for r in read_csv(folder / "ablation-heads.csv")}
    assert len(heads) == 3 + 2 * 4 * 2  # all, none, mlp-only; 2 layers x 4 heads kept and omitted
    assert heads["keep-head:1.3"]["layer"] == 1 and heads["keep-head:1.3"]["head"] == 3
    assert heads["keep-head:1.3"]["mode"] == "keep" and heads["omit-head:0.0"]["mode"] == "omit"
    assert all(0 <= r["p_nDCG@10"] <= 1 for v, r in heads.items() if v != "all")
    windows = {r["variant"]: r for r in read_csv(folder / "ablation-windows.csv")}
    assert set(windows) == {"all", "none", "mlp-only", "keep-attn:0-0", "omit-attn:0-0", "keep-attn:1-1", "omit-attn:1-1"}
    assert windows["keep-attn:0-0"]["nDCG@10"] == windows["omit-attn:1-1"]["nDCG@10"]  # the same sites on
    assert windows["mlp-only"]["nDCG@10"] == heads["mlp-only"]["nDCG@10"]
    assert (windows["keep-attn:1-1"]["window_start"], windows["keep-attn:1-1"]["window_end"]) == (1, 1)


def test_heads_of_chosen_layers_on_a_query_sample_with_measures_the_job_did_not_log(trained_tiny_job):
    folder = JobFolder(trained_tiny_job).checkpoint(2)  # step 4's tables belong to the tests around this one
    args = ["ablation=heads", "heads.layers=[1]", "queries=5", "measures=[nDCG@10,Margin]", "logger=none"]
    try:
        ablate.ablate([f"checkpoint={folder}", *args])
        rows = {r["variant"]: r for r in read_csv(folder / "ablation-heads.csv")}
        sampled = {json.loads(line)["qid"] for line in (folder / "ablation-heads.queries.jsonl").read_text().splitlines()}
    finally:
        for name in ("ablation-heads.csv", "ablation-heads.queries.jsonl"):
            (folder / name).unlink(missing_ok=True)
    assert set(rows) == {"all", "none", "mlp-only"} | {f"{m}-head:1.{h}" for m in ("keep", "omit") for h in range(4)}
    assert all(r["queries"] == 5 and "Margin" in r and "p_Margin" in r for r in rows.values())
    assert "RR(rel=2)@10" not in rows["all"]  # the job logged it; measures= replaced the job's list
    assert len(sampled) == 5
    run = read_run(JobFolder(trained_tiny_job).run_file("dev", 2))  # all's scores, as the job wrote them
    margins = ScoreMargin().per_query(TrainedJob(folder, ["dev"]).data.qrels("dev"), {q: run[q] for q in sampled})
    assert rows["all"]["Margin"] == pytest.approx(sum(margins.values()) / len(margins), abs=1e-5)


def test_the_margin_is_measured_in_ablations(trained_tiny_job):
    folder = JobFolder(trained_tiny_job).checkpoint(4)
    job = TrainedJob(folder, ["dev"])
    job.measures = [*job.measures, "Margin"]
    rows, queries = Ablation(job).windows("dev")
    by_variant = {r["variant"]: r for r in rows}
    run = read_run(JobFolder(trained_tiny_job).run_file("dev", 4))  # the adapter's own scores, written in training
    margins = ScoreMargin().per_query(job.data.qrels("dev"), run)
    assert by_variant["all"]["Margin"] == pytest.approx(sum(margins.values()) / len(margins), abs=1e-5)
    assert by_variant["all"]["delta_Margin"] == 0 and 0 <= by_variant["none"]["p_Margin"] <= 1
    assert {q["qid"] for q in queries if q["variant"] == "all" and q["Margin"] is not None} == set(margins)
    assert by_variant["none"]["Margin"] != by_variant["all"]["Margin"]


def test_the_report_draws_layer_by_head_heat_maps_and_the_extreme_heads(ablated, trained_tiny_job, tmp_path):
    folder, _ = ablated
    page = report.report([f"sweep={trained_tiny_job}", f"out={tmp_path / 'report.html'}"]).read_text()
    assert 'alt="per-head ablation heat maps"' in page and 'alt="attention window ablation heat maps"' in page
    heads_table = page.split('id="ablation-heads"')[1].split("</table>")[0]
    assert heads_table.count("<tr") == 1 + 3 + 2 * 2 * 3  # header; all, none, mlp-only; 3 best and 3 worst per mode
    rows = read_csv(folder / "ablation-heads.csv")
    best_kept = max((r for r in rows if r["mode"] == "keep"), key=lambda r: r["delta_nDCG@10"])
    assert best_kept["variant"] in heads_table
    assert 'id="ablation-windows"' in page
