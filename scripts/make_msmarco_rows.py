"""Write synthetic training rows in the exact schema of Tevatron's msmarco-passage-aug (`train.jsonl.gz`):

    {"query_id": "…", "query": "…",
     "positive_passages": [{"docid": "…", "title": "…", "text": "…"}, …],
     "negative_passages": [{"docid": "…", "title": "…", "text": "…"}, …]}

Ids are strings, as upstream; query ids start at 20,000,000, above every MS MARCO qid, so they never meet an
eval query (the loader refuses a training query that is also an eval query); titles are "-" where MS MARCO
has none (about half the passages here), as in Tevatron's RocketQA-derived titles. 36 negatives of 30-90 words
make rows of about upstream's size (its Arrow table: 5.97 GB for 400,782 rows; these: 5.3 GB). The text is
random words: the schema and the sizes are real, the language is not. For start-up and memory checks of
`data=msmarco data.train_queries=null` without the 2 GB download:

    python scripts/make_msmarco_rows.py --out /tmp/rows.jsonl        # 400,782 rows, 6.1 GB, about 6 minutes
    python -m rerank_lora.run data=msmarco data.train_source=/tmp/rows.jsonl …

Every `--no-positive-every`-th row has no positive passage (upstream has a few; the loader skips them).
"""

import argparse
import gzip
import json
import random
from pathlib import Path

_TEXT = (
    "the of and to in is for on that with as by was are from at be this an which or it have has were not can "
    "its their more one also been other about than into only most some time may after first these such two new "
    "water body blood heart cell energy price cost average salary state county city river temperature degree "
    "symptoms treatment cause disease vitamin protein food diet weight pounds hours years days minutes month "
    "define meaning definition term called known type form process system method used usually often between "
    "during located north south world history war president company business service product market insurance"
)
WORDS = _TEXT.split()
COLLECTION_SIZE = 8_841_823  # msmarco-passage: docids are "0" … "8841822"
FIRST_QID = 20_000_000  # MS MARCO's qids (train, dev, TREC DL) are all below this


def passage(rng: random.Random, words: int) -> dict:
    title = "-" if rng.random() < 0.5 else " ".join(rng.choices(WORDS, k=rng.randint(2, 6))).title()
    return {"docid": str(rng.randrange(COLLECTION_SIZE)), "title": title, "text": " ".join(rng.choices(WORDS, k=words))}


def row(rng: random.Random, index: int, negatives: int, no_positive_every: int) -> dict:
    """One row; its passages have distinct docids (upstream lists never repeat a passage within a row)."""
    count = 0 if no_positive_every and index % no_positive_every == no_positive_every - 1 else 1 + (rng.random() < 0.1)
    passages = {}
    while len(passages) < count + negatives:
        p = passage(rng, rng.randint(30, 90))
        passages[p["docid"]] = p
    chosen = list(passages.values())
    return {
        "query_id": str(FIRST_QID + index),
        "query": " ".join(rng.choices(WORDS, k=rng.randint(3, 10))),
        "positive_passages": chosen[:count],
        "negative_passages": chosen[count:],
    }


def write_rows(path: Path, rows: int, negatives: int = 36, seed: int = 0, no_positive_every: int = 0) -> Path:
    """`rows` rows into `path` (.jsonl, or .jsonl.gz compressed as upstream); query ids are unique."""
    rng = random.Random(seed)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    opener = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "wt", encoding="utf-8") as out:
        for index in range(rows):
            out.write(json.dumps(row(rng, index, negatives, no_positive_every)) + "\n")
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=400_782, help="rows to write (upstream's train split: 400,782)")
    parser.add_argument("--negatives", type=int, default=36, help="hard negatives per row (36: rows of about upstream's size)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-positive-every", type=int, default=0, help="every N-th row has no positive (0: none)")
    parser.add_argument("--out", type=Path, required=True, help="a .jsonl or .jsonl.gz file")
    args = parser.parse_args()
    print(write_rows(args.out, args.rows, args.negatives, args.seed, args.no_positive_every))


if __name__ == "__main__":
    main()
