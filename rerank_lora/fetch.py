"""Fill data=msmarco's cache on a machine with network, to copy it to a cluster that has none:

    python -m rerank_lora.fetch [data.cache_dir=DIR] [data.train_source=...] [other job overrides]

Downloads and builds everything data=msmarco reads into data.cache_dir: the Tevatron training file and its
Arrow cache, and, for every split in data.splits, the ir_datasets queries, qrels and scoreddocs, plus the
msmarco-passage docstore. A download that fails is one `error:` line.
"""

from pathlib import Path

from rerank_lora import cli
from rerank_lora.configs import to_spec
from rerank_lora.data.msmarco import cache_dir, load_rows, train_files
from rerank_lora.data.offline import NotCached, close_store, ir_datasets_at
from rerank_lora.data.spec import DataSpec, eval_split_specs
from rerank_lora.errors import InputError


def fetch(args: list[str]) -> None:
    """Download and build everything data=msmarco reads (every split in data.splits), into data.cache_dir."""
    spec = to_spec(DataSpec, cli.parse_job_overrides(["data=msmarco", *args]).data, "data")
    cache = cache_dir(spec)
    try:
        _fetch_train_rows(spec, cache)
        _fetch_eval_splits(spec, cache / "ir_datasets")
    except NotCached as missing:
        raise InputError(f"cannot download {missing.what} into {missing.folder}: {missing.why}") from None
    except (OSError, RuntimeError) as err:  # network errors: requests' (OSError), ir_datasets' (RuntimeError)
        raise InputError(str(err)) from None
    print(f"done: copy {cache} to the cluster and give data.cache_dir=THAT_FOLDER (or set RERANK_LORA_CACHE)")


def _fetch_train_rows(spec: DataSpec, cache: Path) -> None:
    rows = load_rows(spec, train_files(spec, cache), cache)
    print(f"train: {len(rows)} rows of {spec.train_source}, Arrow cache in {cache / 'huggingface'}")


def _fetch_eval_splits(spec: DataSpec, home: Path) -> None:
    with ir_datasets_at(home, None) as irds:  # downloads on demand: network errors end the command
        for name, split in eval_split_specs(spec).items():
            if split.ir_dataset is None:  # read from local files (`files:`): nothing to fetch
                continue
            dataset = irds.load(split.ir_dataset)
            iters = (dataset.queries_iter(), dataset.qrels_iter(), dataset.scoreddocs_iter())
            queries, qrels, scoreddocs = (sum(1 for _ in it) for it in iters)
            print(f"{name}: {split.ir_dataset}: {queries} queries, {qrels} qrels, {scoreddocs} scoreddocs")
        store = irds.load("msmarco-passage").docs_store()
        try:
            store.build()
        finally:
            close_store(store)
        print(f"msmarco-passage docstore built in {home}")


def main() -> None:
    cli.main(fetch)


if __name__ == "__main__":
    main()
