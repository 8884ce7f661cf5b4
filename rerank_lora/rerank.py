"""Rerank any TREC run with any reranker this project can load, and write the reranked run.

    python -m rerank_lora.rerank checkpoint=PATH run=FIRST_STAGE.trec corpus=corpus.jsonl queries=queries.jsonl \
        [qrels=qrels.txt] [label=dev] [depth=100] [out=reranked.trec]

checkpoint: a checkpoint folder or a job folder (its last checkpoint) of this project, a peft sequence-
classification adapter folder, or hf:owner/name[@revision][/subfolder] with base= (see analysis/imported_job.py).
Each query's top `depth` passages of `run` are scored in length-sorted batches (in the job's precision) and
written, best first, to `out` (default: `<run's name>.reranked.trec` here), under a temporary name renamed
when whole. With qrels, the metrics of the input run at that depth and of the reranked run are printed as JSON.
The input template, its options and the pair length are the checkpoint's own unless template=, query_prefix=,
passage_prefix=, append_eos=, max_length= say otherwise; the score is read where the checkpoint's reranker.json says.
"""

import dataclasses
import logging
import time
from pathlib import Path

from rerank_lora import cli
from rerank_lora.analysis.imported_job import IMPORT_ARGS, import_options
from rerank_lora.analysis.trained_job import checkpoint_folders, saved_spec
from rerank_lora.data.collection import load_files
from rerank_lora.data.pairs import check_template
from rerank_lora.data.spec import DataSpec
from rerank_lora.data.trec_files import write_run
from rerank_lora.errors import InputError, check_int
from rerank_lora.evaluation import metrics
from rerank_lora.evaluation.evaluator import score
from rerank_lora.job.builders import build_data, load_checkpoint

log = logging.getLogger("rerank_lora.rerank")
SPLIT = "rerank"  # every query of the run, as one split
DEFAULTS = {
    "checkpoint": "???",
    "run": "???",  # the first-stage TREC run
    "corpus": "???",  # JSONL {"pid", "text"}
    "queries": "???",  # JSONL {"qid", "text"} or TSV qid<TAB>text
    "qrels": None,  # TREC qrels: print the metrics of the input and the reranked run
    "label": None,  # only the queries labelled so in a JSONL queries file ("split": dev is DL19 in the shipped set)
    "depth": 100,  # rerank each query's top-k of the run
    "out": None,  # the reranked run (null: <run's name>.reranked.trec in the working folder)
    "batch_size": 16,
    "merge": False,  # fold LoRA into the weights while scoring: faster, scores differ in the last float bits
    "measures": list(metrics.DEFAULT_MEASURES),
    **IMPORT_ARGS,  # template, its options and max_length also override a checkpoint's own (not where it reads)
}


def rerank(args: list[str]) -> dict:
    cfg = cli.parse_args(args, DEFAULTS, required=("checkpoint", "run", "corpus", "queries"))
    check_int("depth", cfg.depth)
    check_int("batch_size", cfg.batch_size)
    if cfg.template is not None:
        check_template(cfg.template)
    measures = cli.as_list(cfg.measures)
    metrics.parse_measures(measures)  # a bad name fails before any model loads
    if cfg.qrels:  # only then are measures computed
        metrics.check_cutoffs(measures, cfg.depth, "depth")
    out = Path(cfg.out) if cfg.out else Path(f"{Path(cfg.run).stem}.reranked.trec")
    (folder,) = checkpoint_folders(cfg.checkpoint, every=False, imports=import_options(cfg))
    job, _ = saved_spec(folder)
    job = dataclasses.replace(job, data=_data_spec(cfg, job.data))
    collection = load_files(job.data)
    labels = sorted({str(label) for label in collection.query_splits.values()})
    collection.query_splits = {q: SPLIT for q, label in collection.query_splits.items() if cfg.label in (None, label)}
    if not any(q in collection.candidates for q in collection.query_splits):
        raise InputError(f"label={cfg.label}: no query of {cfg.queries} with it is in run={cfg.run}; labels there: {labels}")
    reranker, tokenizer = load_checkpoint(folder, job)  # in the job's precision: its metrics are reproduced
    batches = build_data(job.data, job.seed, tokenizer, collection, train=False)
    first_stage = batches.first_stage[SPLIT]
    started = time.perf_counter()
    reranked = score(reranker, batches.eval_batches(SPLIT), desc=f"reranking {len(first_stage)} queries", merge=cfg.merge)
    pairs = sum(len(scores) for scores in reranked.values())
    seconds = time.perf_counter() - started
    log.info("%d pairs scored in %.1f s (%.1f pairs/s)", pairs, seconds, pairs / seconds)
    write_run(reranked, out, tag=f"rerank_lora.{folder.name}")
    result = {"run": str(out), "queries": len(reranked), "pairs": pairs}
    if cfg.qrels:
        result["input"] = metrics.compute(collection.qrels, first_stage, measures)
        result["reranked"] = metrics.compute(collection.qrels, reranked, measures)
    return result


def _data_spec(cfg, job_data: DataSpec) -> DataSpec:
    """The run's files as a collection of one eval split, encoded as the checkpoint's job encoded its pairs."""
    return dataclasses.replace(
        job_data,
        loader="files",
        corpus=cfg.corpus,
        queries=cfg.queries,
        qrels=cfg.qrels,
        candidates=cfg.run,
        triples=None,
        splits={},
        eval_splits=[SPLIT],
        eval_depth=cfg.depth,
        eval_batch_size=cfg.batch_size,
        template=cfg.template or job_data.template,
        **{key: job_data_value if cfg[key] is None else cfg[key] for key, job_data_value in _options(job_data).items()},
        max_length=cfg.max_length or job_data.max_length,
    )


def _options(data: DataSpec) -> dict:
    return {"query_prefix": data.query_prefix, "passage_prefix": data.passage_prefix, "append_eos": data.append_eos}


def main() -> None:
    cli.main(rerank)


if __name__ == "__main__":
    main()
