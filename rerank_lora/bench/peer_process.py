"""Running a peer script (scripts/peers/, in a checkout) with the peers' python, and checking that venv first."""

import json
import os
import subprocess
from pathlib import Path

from rerank_lora.errors import InputError

PEER_SCRIPTS = Path(__file__).resolve().parents[2] / "scripts" / "peers"


def check_peers(python: Path) -> None:
    """The peers' venv is there and imports both peers (seconds; before any long measurement)."""
    if not python.is_file():
        raise InputError(f"the peers' venv is missing (no {python}): run `make peers-setup`")
    found = subprocess.run([str(python), "-c", "import tevatron.reranker.driver.train, FlagEmbedding"],
                           capture_output=True, text=True)
    if found.returncode:
        last = (found.stderr.strip().splitlines() or ["?"])[-1]
        raise InputError(f"{python} cannot import Tevatron's reranker and FlagEmbedding ({last}): run `make peers-setup`")


def run_peer(python: Path, script: str, arguments: list[str], threads: int, out: Path) -> dict:
    """Run scripts/peers/`script` with the peers' python; its JSON result. Its stderr goes to a log under `out`."""
    command = [str(python), str(PEER_SCRIPTS / script), *arguments, "--threads", str(threads)]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    stderr = out / f"{Path(script).stem}.log"
    with stderr.open("a") as errors:
        done = subprocess.run(command, stdout=subprocess.PIPE, stderr=errors, text=True, env=env, cwd=out)
    if done.returncode:
        tail = "\n".join(stderr.read_text().strip().splitlines()[-15:])
        raise InputError(f"{script} failed (exit status {done.returncode}); the end of its log:\n{tail}")
    return json.loads(done.stdout.strip().splitlines()[-1])
