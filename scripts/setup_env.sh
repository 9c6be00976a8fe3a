#!/usr/bin/env bash
# Set up ./.venv with torch 2.14.1 + torchvision 0.29.1, basicsr 1.4.2 and this repository (editable, both layers), as ../shared/STACK.md
# verifies. The environment is built once per content of its inputs (this script and pyproject.toml) in a cache folder and
# linked as ./.venv; a change of either builds a fresh one. Override the cache with SRCONVNET_VENV_CACHE.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
key=$(cat scripts/setup_env.sh pyproject.toml | sha256sum | cut -c1-16)
cache=${SRCONVNET_VENV_CACHE:-$HOME/.cache/srconvnet-plugin}
venv="$cache/venv-$key"
if [ ! -f "$venv/.complete" ]; then
  echo "setup: building $venv (about 2 minutes)"
  rm -rf "$venv"
  mkdir -p "$cache"
  "$PY" -m venv "$venv"
  "$venv/bin/pip" install -q -U "setuptools>=77" wheel
  # --no-build-isolation: basicsr's sdist lists torch in setup_requires; isolation would build a second torch.
  "$venv/bin/pip" install -q --no-build-isolation torch==2.14.1 torchvision==0.29.1 basicsr==1.4.2
  "$venv/bin/pip" install -q --no-build-isolation -e '.[toolbox,test]'
  touch "$venv/.complete"
else
  echo "setup: reusing $venv (inputs unchanged)"
fi
# the editable install points at one checkout: point it at this one
"$venv/bin/pip" install -q --no-build-isolation --no-deps -e . 2>/dev/null
if [ -L .venv ] || [ ! -e .venv ]; then
  ln -sfn "$venv" .venv
else
  echo "setup: ./.venv exists and is not a link; leaving it and using $venv" >&2
fi
"$venv/bin/python" -c "import srconvnet_plugin, basicsr, torch; print('setup: ok, torch', torch.__version__, '/ basicsr', basicsr.__version__)"
