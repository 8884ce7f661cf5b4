#!/usr/bin/env bash
# Builds the peers' venv for `make bench-peers`: torch pinned first (the CPU wheel; a plain `torch` would pull
# CUDA), then FlagEmbedding from PyPI, then Tevatron's reranker from a git checkout pinned to a commit (its
# reranker trainer is not on PyPI), without its heavy optional dependencies (vllm, faiss, deepspeed, ...).
# Usage: scripts/peers/setup.sh VENV PYTHON TORCH TEVATRON_GIT TEVATRON_COMMIT
set -euo pipefail
venv=$1 python=$2 torch_spec=$3 tevatron_git=$4 tevatron_commit=$5

# The same Hugging Face stack as our venv (pyproject.toml), so both sides run one model implementation:
# transformers 5.23 is inside FlagEmbedding 1.4.2's range (>=4.44.2,<6) and has what Tevatron's reranker
# uses (Trainer(processing_class=...)).
HF_STACK=(transformers==5.23.0 tokenizers==0.23.3 peft==0.21.2 accelerate==1.15.0 datasets==5.2.0)

staging=$(mktemp -d)
trap 'rm -rf "$staging"' EXIT
if ! git clone --quiet "$tevatron_git" "$staging/tevatron" 2>"$staging/clone.log" \
   || ! git -C "$staging/tevatron" checkout --quiet "$tevatron_commit" 2>>"$staging/clone.log"; then
  echo "error: cannot get Tevatron commit $tevatron_commit from $tevatron_git ($(tail -1 "$staging/clone.log"))." >&2
  echo "Fetch https://github.com/texttron/tevatron (e.g. \`git clone --bare https://github.com/texttron/tevatron.git\`" >&2
  echo "on a machine with network access, copied here) and run: make peers-setup TEVATRON_GIT=/path/to/that/clone" >&2
  exit 1
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
"$venv/bin/python" -c "import tevatron.reranker.driver.train, FlagEmbedding" >/dev/null
