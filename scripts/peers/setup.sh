#!/usr/bin/env bash
# Builds the peers' venv for `make bench-peers` and `make test-reference`: torch pinned first (the CPU wheel; a
# plain `torch` would pull CUDA), then the Hugging Face stack pinned below and FlagEmbedding from PyPI, then
# Tevatron's reranker (its reranker is not on PyPI) from its source tree at a pinned commit, --no-deps (its heavy
# optional dependencies, vllm, faiss, deepspeed, ..., stay out).
#
# The source comes from a `git archive` tarball checked against a pinned sha256 (the default: this machine cannot
# reach GitHub), or from a git clone (remote or local) checked out at the pinned commit:
#   scripts/peers/setup.sh VENV PYTHON TORCH archive TARBALL SHA256
#   scripts/peers/setup.sh VENV PYTHON TORCH git URL_OR_PATH COMMIT
set -euo pipefail
if [ $# -ne 6 ] || { [ "$4" != archive ] && [ "$4" != git ]; }; then
  echo "usage: $0 VENV PYTHON TORCH archive TARBALL SHA256 | $0 VENV PYTHON TORCH git URL_OR_PATH COMMIT" >&2
  exit 2
fi
venv=$1 python=$2 torch_spec=$3 source_kind=$4 source=$5 pin=$6

# The same Hugging Face stack as our venv (pyproject.toml), so both sides run one model implementation:
# transformers 5.23 is inside FlagEmbedding 1.4.2's range (>=4.44.2,<6) and has what Tevatron's reranker
# uses (Trainer(processing_class=...)).
HF_STACK=(transformers==5.23.0 tokenizers==0.23.3 peft==0.21.2 accelerate==1.15.0 datasets==5.2.0)

staging=$(mktemp -d)
trap 'rm -rf "$staging"' EXIT
if [ "$source_kind" = archive ]; then
  if [ ! -f "$source" ]; then
    echo "error: no Tevatron source archive at $source (make peers-setup TEVATRON_ARCHIVE=/path/to/tevatron-dd06310.tar.gz)." >&2
    exit 1
  fi
  found=$(sha256sum "$source" | cut -d' ' -f1)
  if [ "$found" != "$pin" ]; then
    echo "error: sha256 mismatch for the Tevatron archive $source: expected $pin, found $found." >&2
    exit 1
  fi
  mkdir "$staging/unpacked"
  tar -xzf "$source" -C "$staging/unpacked"
  top=("$staging"/unpacked/*)
  if [ ${#top[@]} -ne 1 ] || [ ! -f "${top[0]}/setup.py" ]; then
    echo "error: $source is not one Tevatron source tree (git archive --prefix=tevatron-<commit>/ ...)." >&2
    exit 1
  fi
  mv "${top[0]}" "$staging/tevatron"
  # git archive records the commit in the tarball's pax header (read it as `git get-tar-commit-id` does)
  commit=$("$python" -c 'import sys, tarfile; print(tarfile.open(sys.argv[1]).pax_headers.get("comment", ""))' "$source")
  printf 'commit %s\narchive %s\nsha256 %s\n' "$commit" "$(basename "$source")" "$found" >"$staging/tevatron/.peers-source"
else
  if ! git clone --quiet "$source" "$staging/tevatron" 2>"$staging/clone.log" \
     || ! git -C "$staging/tevatron" checkout --quiet "$pin" 2>>"$staging/clone.log"; then
    echo "error: cannot get Tevatron commit $pin from $source ($(tail -1 "$staging/clone.log"))." >&2
    echo "Without network access, use the source archive: make peers-setup TEVATRON_ARCHIVE=/path/to/tevatron-dd06310.tar.gz" >&2
    exit 1
  fi
  printf 'commit %s\ngit %s\n' "$(git -C "$staging/tevatron" rev-parse HEAD)" "$source" >"$staging/tevatron/.peers-source"
fi

rm -rf "$venv"
"$python" -m venv "$venv"
"$venv/bin/pip" install --quiet $torch_spec
"$venv/bin/pip" install --quiet "${HF_STACK[@]}" FlagEmbedding==1.4.2
# Tevatron's setup.py asks only for transformers and datasets; its reranker also imports peft and the HF
# Trainer (accelerate), installed above. --no-deps keeps the rest of its toolkit's requirements out.
mkdir -p "$venv/src"
mv "$staging/tevatron" "$venv/src/tevatron"
"$venv/bin/pip" install --quiet --no-deps "$venv/src/tevatron"
"$venv/bin/python" -c "import tevatron.reranker.driver.train, tevatron.reranker.driver.rerank, FlagEmbedding" >/dev/null
