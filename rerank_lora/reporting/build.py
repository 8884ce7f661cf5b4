"""The sweep report as one HTML page: its sections in order (cells, then analyses of the adapters, then their
internals), under a header saying what was read and how significance is tested."""

import time

from rerank_lora.reporting.page import Page
from rerank_lora.reporting.sections_ablations import ablations, boundary
from rerank_lora.reporting.sections_attention import attention
from rerank_lora.reporting.sections_cells import learning_curves, overview, ranks, targets
from rerank_lora.reporting.sections_internals import adapters, probes
from rerank_lora.reporting.sweep import Sweep

SECTIONS = (overview, learning_curves, ranks, targets, ablations, boundary, probes, attention, adapters)


def build(sweep: Sweep) -> str:
    page = Page("rerank-lora sweep report")
    for section in SECTIONS:
        section(page, sweep)
    subtitle = (
        f"{sweep.folder}: {len(sweep.cells)} cells, generated {time.strftime('%Y-%m-%d %H:%M')}. "
        f"Significance: two-sided paired t-test over the split's queries, Holm-corrected within each table "
        f"(per split and measure); highlighted: p < {sweep.alpha}."
    )
    return page.html(subtitle)
