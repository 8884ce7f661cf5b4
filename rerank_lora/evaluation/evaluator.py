"""Rerank every eval split (at each checkpoint; a held-out split only when asked), write the TREC run, compute
metrics, append them to metrics.jsonl, log them. In a data-parallel job only the process that writes the job
folder (global rank 0) evaluates; the others do nothing."""

import logging
import math

import torch
from peft import PeftModel
from tqdm.auto import tqdm

from rerank_lora import faults
from rerank_lora.data.trec_files import write_qrels, write_run
from rerank_lora.errors import TrainingDiverged
from rerank_lora.evaluation import metrics
from rerank_lora.job_folder import FIRST_STAGE, MODEL, JobFolder, metrics_row, writes_job_folder

log = logging.getLogger(__name__)


class Evaluator:
    def __init__(self, datamodule, job: JobFolder, measures, logger=None, held_out=()):
        self.data, self.job, self.measures, self.logger = datamodule, job, list(measures), logger
        self.held_out = list(held_out)  # splits scored only when named in evaluate_model(splits=...)
        self.writes = writes_job_folder()  # the other ranks of a data-parallel job neither score nor write
        self.batches = {split: datamodule.eval_batches(split) for split in datamodule.first_stage} if self.writes else {}
        self.baseline: dict[str, dict[str, float]] = {}

    def evaluate_first_stage(self) -> None:
        """The first-stage order of each split, at the reranking depth, evaluated once per job."""
        if not self.writes:
            return
        for split, run in self.data.first_stage.items():
            write_qrels(self.data.qrels(split), self.job.qrels_file(split))
            write_run(run, self.job.run_file(split, None), FIRST_STAGE)
            faults.point("first_stage")
            self.baseline[split] = self._record(split, None, FIRST_STAGE, run)

    def evaluate_model(self, reranker, step: int, splits=None) -> dict[str, dict[str, float]]:
        """Rerank `splits` (default: every split but the held-out ones) with the model as it is at `step`."""
        results = {}
        chosen = [s for s in self.batches if s not in self.held_out] if splits is None else list(splits)
        for split in chosen:
            batches = self.batches.get(split)
            if batches is None:  # a data-parallel rank that does not write the job folder
                continue
            # merge=False: merging and unmerging leaves rounding drift in the base weights, and a resumed
            # run (fresh base weights) must continue exactly as an uninterrupted one would
            run = score(reranker, batches, desc=f"scoring {split} @ step {step}", merge=False)
            if not all(math.isfinite(value) for scores in run.values() for value in scores.values()):
                raise TrainingDiverged(f"the model's scores on {split} are not finite at step {step}")
            write_run(run, self.job.run_file(split, step), f"step{step}")
            results[split] = self._record(split, step, MODEL, run)
            faults.point("evaluation")
        return results

    def _record(self, split: str, step: int | None, ranker: str, run: dict) -> dict[str, float]:
        values = metrics.compute(self.data.qrels(split), run, self.measures)
        self.job.append_metrics(metrics_row(step, split, ranker, values))
        log.info("%s %s step=%s %s", split, ranker, step, {k: round(v, 4) for k, v in values.items()})
        if self.logger is not None and step is not None:
            logged = {f"{split}/{name}": v for name, v in values.items()}
            logged |= {f"{split}/first-stage/{name}": v for name, v in self.baseline.get(split, {}).items()}
            self.logger.log_metrics(logged, step=step)
        return values


@torch.inference_mode()
def score(reranker, batches, desc: str = "scoring", merge: bool = True) -> dict[str, dict[str, float]]:
    """Scores of every pair in `batches`, as a run {qid: {pid: score}}; the model is left as it was.
    With `merge`, the LoRA update is folded into the base weights while scoring (about a third faster). The
    matmuls run in the reranker's precision (`Reranker.autocast`), on every device; the scores are float32."""
    was_training = reranker.training
    reranker.eval()
    merge = merge and isinstance(reranker.backbone, PeftModel)
    if merge:
        reranker.backbone.merge_adapter()
    device = next(reranker.parameters()).device
    run: dict[str, dict[str, float]] = {}
    try:
        for batch in tqdm(batches, desc=desc, unit="batch", leave=False):
            inputs = {k: v.to(device) for k, v in batch.inputs.items()}
            with reranker.autocast():
                scores = reranker(**inputs).tolist()
            for qid, pid, value in zip(batch.qids, batch.pids, scores):
                run.setdefault(qid, {})[pid] = value
    finally:
        if merge:
            reranker.backbone.unmerge_adapter()
        reranker.train(was_training)
    return run
