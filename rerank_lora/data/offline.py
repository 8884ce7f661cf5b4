"""Cache first, download only when the network answers: the guards data=msmarco reads its sources through.

Offline detection (HF_HUB_OFFLINE / HF_DATASETS_OFFLINE), a reachability check that says why a download
cannot be tried, a Hub file read from the cache before any download, ir_datasets bound to one home folder
with its downloads refused while only the cache is read (its download iterator is replaced for the
duration), and a temporary edit of os.environ. What is neither cached nor downloadable raises NotCached.
"""

import contextlib
import logging
import os
import socket
from pathlib import Path
from urllib.parse import urlparse

from rerank_lora.errors import InputError

log = logging.getLogger(__name__)
_bound_home: Path | None = None  # ir_datasets fixes its folders when first imported


class NotCached(Exception):
    """Data that is not in the cache and cannot be downloaded now: what, the cache folder, why not, and how
    to fill the cache by hand."""

    def __init__(self, what: str, folder: Path, why: str, how: str):
        super().__init__(what)
        self.what, self.folder, self.why, self.how = what, folder, why, how


def offline() -> bool:
    """HF_HUB_OFFLINE or HF_DATASETS_OFFLINE set: nothing is downloaded, by either library."""
    flags = (os.environ.get(k, "").strip().upper() for k in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"))
    return any(flag in ("1", "ON", "YES", "TRUE") for flag in flags)


def why_no_download(url: str) -> str | None:
    """None when `url`'s host answers (or a proxy is set); else why a download cannot be tried."""
    if offline():
        return "HF_HUB_OFFLINE/HF_DATASETS_OFFLINE is set"
    if any(os.environ.get(k) for k in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")):
        return None
    host = urlparse(url).hostname
    try:
        socket.create_connection((host, 443), timeout=3).close()
    except OSError as err:
        return f"{host} cannot be reached: {err}"
    return None


def hub_file(repo: str, filename: str, hub_cache: Path) -> str:
    """The local path of a Hub dataset's file: from `hub_cache`, else downloaded into it when possible."""
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    get = dict(repo_id=repo, filename=filename, repo_type="dataset", cache_dir=str(hub_cache))
    try:
        return hf_hub_download(**get, local_files_only=True)
    except LocalEntryNotFoundError:
        pass
    what = f"{repo} ({filename})"
    how = f"huggingface_hub.hf_hub_download({repo!r}, {filename!r}, repo_type='dataset', cache_dir='{hub_cache}')"
    why = why_no_download(f"{os.environ.get('HF_ENDPOINT', 'https://huggingface.co')}/datasets/{repo}")
    if why:
        raise NotCached(what, hub_cache, why, how)
    log.info("downloading %s/%s into %s", repo, filename, hub_cache)
    try:
        return hf_hub_download(**get)
    except OSError as err:  # connection errors, missing files
        raise NotCached(what, hub_cache, f"{type(err).__name__}: {err}".splitlines()[0], how) from None


@contextlib.contextmanager
def ir_datasets_at(home: Path, refused: list | None):
    """ir_datasets with IR_DATASETS_HOME=home; with a `refused` list, every download is refused at once (its
    URL noted there), so only what the cache holds can be read. One home per process."""
    global _bound_home
    if _bound_home is not None and _bound_home != home:
        raise InputError(f"data.cache_dir: ir_datasets already reads {_bound_home} in this process; run one cache per process")
    with environ(IR_DATASETS_HOME=str(home)):
        import ir_datasets

        _bound_home = home
        with _downloads_refused(refused) if refused is not None else contextlib.nullcontext():
            yield ir_datasets


@contextlib.contextmanager
def _downloads_refused(refused: list):
    """ir_datasets' download iterator replaced by one that notes the URL and refuses; its retry advice muted."""
    from ir_datasets.util import download

    quiet, logger = _QuietDownloads(), logging.getLogger("ir_datasets")
    original = download.RequestsDownload.__iter__

    def refuse(self):
        refused.append(self.url)
        raise ConnectionRefusedError(f"not downloading {self.url}: reading the cache only")

    logger.addFilter(quiet)
    download.RequestsDownload.__iter__ = refuse
    try:
        yield
    finally:
        download.RequestsDownload.__iter__ = original
        logger.removeFilter(quiet)


class _QuietDownloads(logging.Filter):
    def filter(self, record) -> bool:
        return not str(record.msg).startswith(("Download failed", "If you have a local copy", "Please confirm"))


def close_store(store) -> None:
    """Close an ir_datasets docstore's files now rather than at interpreter exit (where closing them fails
    noisily)."""
    lookup = getattr(store, "lookup", None)
    if lookup is not None:
        lookup.close()


@contextlib.contextmanager
def environ(**values: str):
    """os.environ with `values` set, restored afterwards."""
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
