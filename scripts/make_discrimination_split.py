"""Write the shipped set's discrimination split (label `discrim`) into rerank_lora/data/msmarco-mini, from the
shipped files alone, deterministically:

    .venv/bin/python scripts/make_discrimination_split.py           # rewrite the split's rows in place
    .venv/bin/python scripts/make_discrimination_split.py --check   # exit 1 if the shipped rows differ

Perlman, Nijasure, Allan's construction (1 relevant + 99 random passages per query, where a base model and a
fine-tuned reranker are far apart), on the evaluation queries the default job never trains on: the shipped set
has no MS MARCO training queries to spare (all 994 train the default job), so the split is built from TREC DL19
(label `dev`, 43 queries) and DL20 (label `test`, 54 queries). The rule, per source query Q:

- its qid in the split is `Q-discrim` (the same qid cannot hold two candidate lists in one collection);
- the positive: among Q's judged passages that the shipped corpus holds (text), the one with the highest NIST
  grade (>= 1); ties: the smallest pid (numerically);
- 99 negatives: drawn without replacement from every passage of the shipped corpus (sorted by pid), leaving out
  each passage judged for Q at any grade >= 1 (grade-0 and unjudged passages may be drawn), with
  random.Random(f"{SEED}:{Q}");
- the 100 passages shuffled by the same generator into the candidate order (rank 1..100, score 101 - rank, tag
  `random`): the first stage is a random ranking, so the split is reranked to depth 100;
- qrels: one row, the positive at its NIST grade.

The rows are appended to queries.jsonl, qrels.tsv and candidates.tsv after the rows of the other splits (left
byte for byte as they are); stats.json gets a `discrim` entry and its totals updated.
"""

import argparse
import json
import random
import sys
from pathlib import Path

MINI = Path(__file__).resolve().parent.parent / "rerank_lora" / "data" / "msmarco-mini"
SEED = 20240229
LABEL = "discrim"
SUFFIX = "-discrim"
SOURCES = ("dev", "test")  # DL19, DL20
NEGATIVES = 99


def _split_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


def _is_ours(qid: str) -> bool:
    return qid.endswith(SUFFIX)


def build(folder: Path = MINI) -> dict[str, str]:
    """The new contents of queries.jsonl, qrels.tsv, candidates.tsv and stats.json (file name -> text)."""
    query_lines = [line for line in _split_lines((folder / "queries.jsonl").read_text()) if json.loads(line)["split"] != LABEL]
    qrel_lines = [line for line in _split_lines((folder / "qrels.tsv").read_text()) if not _is_ours(line.split()[0])]
    run_lines = [line for line in _split_lines((folder / "candidates.tsv").read_text()) if not _is_ours(line.split()[0])]
    corpus = sorted(
        (json.loads(line)["pid"] for line in _split_lines((folder / "corpus.jsonl").read_text())),
        key=lambda pid: (not pid.isdigit(), int(pid) if pid.isdigit() else 0, pid),
    )
    in_corpus = set(corpus)
    qrels: dict[str, dict[str, int]] = {}
    for line in qrel_lines:
        qid, _, pid, rel = line.split()
        qrels.setdefault(qid, {})[pid] = int(rel)

    new_queries, new_qrels, new_run, per_source = [], [], [], {s: 0 for s in SOURCES}
    for line in query_lines:
        query = json.loads(line)
        if query["split"] not in SOURCES:
            continue
        qid, grades = query["qid"], qrels.get(query["qid"], {})
        judged = [(rel, pid) for pid, rel in grades.items() if rel >= 1 and pid in in_corpus]
        if not judged:
            continue
        grade, positive = min(judged, key=lambda r: (-r[0], int(r[1])))
        relevant = {pid for pid, rel in grades.items() if rel >= 1}
        rng = random.Random(f"{SEED}:{qid}")
        negatives = rng.sample([pid for pid in corpus if pid not in relevant], NEGATIVES)
        order = [positive, *negatives]
        rng.shuffle(order)
        new_qid = qid + SUFFIX
        new_queries.append(json.dumps({"qid": new_qid, "text": query["text"], "split": LABEL}, ensure_ascii=False))
        new_qrels.append(f"{new_qid} 0 {positive} {grade}")
        new_run += [f"{new_qid} Q0 {pid} {rank} {101 - rank:.6f} random" for rank, pid in enumerate(order, start=1)]
        per_source[query["split"]] += 1

    files = {
        "queries.jsonl": "\n".join(query_lines + new_queries) + "\n",
        "qrels.tsv": "\n".join(qrel_lines + new_qrels) + "\n",
        "candidates.tsv": "\n".join(run_lines + new_run) + "\n",
    }
    stats = json.loads((folder / "stats.json").read_text())
    stats[LABEL] = {
        "rule": "1 judged positive (highest grade in the corpus; ties: smallest pid) + 99 random corpus passages "
        "not judged >= 1 for the query; scripts/make_discrimination_split.py",
        "seed": SEED,
        "queries": len(new_queries),
        "queries_from": {"dev (DL19)": per_source["dev"], "test (DL20)": per_source["test"]},
        "positive_grades": {str(g): sum(1 for line in new_qrels if line.split()[3] == str(g)) for g in (1, 2, 3)},
        "candidates_per_query": NEGATIVES + 1,
        "qrels_rows": len(new_qrels),
    }
    stats["queries_total"] = len(query_lines) + len(new_queries)
    stats["qrels_rows_total"] = len(qrel_lines) + len(new_qrels)
    stats["candidate_rows"] = len(run_lines) + len(new_run)
    for name, text in files.items():
        stats["file_bytes"][name] = len(text.encode("utf-8"))
    stats["total_MB"] = round(sum(stats["file_bytes"].values()) / 1e6, 2)
    files["stats.json"] = json.dumps(stats, indent=2, ensure_ascii=False) + "\n"
    return files


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--folder", type=Path, default=MINI)
    parser.add_argument("--check", action="store_true", help="compare with the shipped files; write nothing")
    args = parser.parse_args()
    files = build(args.folder)
    differ = [name for name, text in files.items() if (args.folder / name).read_text() != text]
    if args.check:
        print("differ: " + ", ".join(differ) if differ else "the shipped split is what the rule makes")
        return 1 if differ else 0
    for name in differ:
        (args.folder / name).write_text(files[name])
    print(f"wrote {', '.join(differ) or 'nothing (unchanged)'} in {args.folder}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
