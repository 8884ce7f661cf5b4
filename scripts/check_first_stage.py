"""CI check: the first-stage nDCG@10 rows of every job under a sweep folder equal the given figures.

    python scripts/check_first_stage.py SWEEP_DIR dl19=0.5058 dl20=0.4796
"""

import sys

from rerank_lora.job_folder import FIRST_STAGE, job_folders


def main(sweep: str, expected: list[str]) -> None:
    wanted = {split: float(value) for split, value in (item.split("=") for item in expected)}
    jobs = job_folders(sweep, depth=1)
    assert jobs, f"no job folders in {sweep}"
    for job in jobs:
        found = {r["split"]: round(r["nDCG@10"], 4) for r in job.metrics() if r["ranker"] == FIRST_STAGE}
        assert found == wanted, f"{job.path}: first-stage nDCG@10 {found}, expected {wanted}"
    print(f"first-stage nDCG@10 {wanted} in {len(jobs)} job(s)")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2:])
