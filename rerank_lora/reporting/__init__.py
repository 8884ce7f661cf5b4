"""The sweep report: what a sweep folder holds (`sweep`), the HTML page (`page`), its figures (`plots`), its
sections by the question they answer (`sections_cells`, `sections_ablations`, `sections_internals`) and their
order (`build`). The command is rerank_lora.report."""
