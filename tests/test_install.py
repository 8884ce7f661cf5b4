"""`pip install .` (not editable) yields a package that runs on its own: configs, sweeps and the shipped data
inside it, a tiny job from a folder outside the checkout, and the console scripts declared in pyproject."""

import json
import subprocess
import sys
import tomllib
from pathlib import Path

from conftest import ONE_THREAD, ROOT, TINY, job_dirs


def test_installed_package_runs_a_job_outside_the_checkout(tmp_path):
    site, elsewhere = tmp_path / "site", tmp_path / "elsewhere"
    elsewhere.mkdir()
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
         "--target", str(site), str(ROOT)],
        check=True, capture_output=True, text=True, timeout=300,
    )
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "PYTHONPATH": str(site), "WANDB_MODE": "offline", **ONE_THREAD}
    where = subprocess.run(
        [sys.executable, "-c", "import rerank_lora.configs as c; print(c.__file__, c.CONF_DIR, c.SWEEPS_DIR)"],
        cwd=elsewhere, env=env, capture_output=True, text=True, check=True,
    ).stdout.split()
    assert all(path.startswith(str(site)) for path in where), where  # nothing read from the checkout

    job = subprocess.run(
        [sys.executable, "-m", "rerank_lora.run", *TINY, "data.eval_splits=[dev]"],
        cwd=elsewhere, env={**env, "RERANK_LORA_CACHE": str(_cache())}, capture_output=True, text=True, timeout=600,
    )
    assert job.returncode == 0, job.stderr[-3000:]
    (folder,) = job_dirs(elsewhere)
    assert json.loads((folder / "status.json").read_text())["status"] == "completed"

    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    for name, target in scripts.items():
        module, function = target.split(":")
        probe = f"import {module} as m; assert callable(m.{function})"
        subprocess.run([sys.executable, "-c", probe], cwd=elsewhere, env=env, check=True, timeout=120)
        assert name == "rerank-lora-" + module.removeprefix("rerank_lora.").replace(".", "-").replace("_", "-")


def _cache():
    """The converted SmolLM2 tokenizer the tiny models borrow: the user's cache, as the job would use it."""
    from rerank_lora.configs import compose_job

    return Path(compose_job([]).cache_dir).expanduser()
