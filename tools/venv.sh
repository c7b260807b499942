#!/bin/sh
# Usage: tools/venv.sh VENV [PIP-INSTALL-ARGS...]
# Creates the venv VENV when it has no python yet (with $PYTHON, default python3), then
# installs the given requirements into it, with the checkout's constraints.txt as the lock.
#
# uv installs the ~75 pinned packages of the core in a few seconds where pip takes about
# 20, so the venv is made without pip (ensurepip alone takes seconds), uv is put in it by
# the system's pip (`pip --python`, pip >= 22.3), and pip by uv, so that VENV/bin/pip is
# there for whoever adds an extra later. Where that fails (no pip outside, an old one, no
# uv for this platform) the venv gets pip from ensurepip and pip installs, as it always did.
set -eu
constraints="$(cd "$(dirname "$0")/.." && pwd)/constraints.txt"
venv="$1"; shift
python="${PYTHON:-python3}"
bin="$venv/bin"
# The system's certificate store, as pip uses: a proxy's CA is there, not in uv's own roots.
uv_install() { "$bin/uv" pip install --quiet --system-certs --python "$bin/python" "$@"; }

if [ ! -x "$bin/python" ]; then
  "$python" -m venv --without-pip "$venv"
  if "$python" -m pip --python "$bin/python" install -qq --disable-pip-version-check -c "$constraints" uv \
     && uv_install "pip>=24"; then :
  else
    echo "uv could not be installed: installing with pip" >&2
    rm -f "$bin/uv" "$bin/uvx"
    # A half-made venv would pass for a made one next time: remove it if this fails too.
    { "$bin/python" -m ensurepip --upgrade >/dev/null \
      && "$bin/python" -m pip install --quiet --disable-pip-version-check --upgrade "pip>=24"; } \
      || { rm -rf "$venv"; exit 1; }
  fi
fi

[ "$#" -eq 0 ] && exit 0
# uv reads no pip configuration (a private index named in pip.conf, say): where it
# fails, pip, which the venv has too, tries with that configuration.
if [ -x "$bin/uv" ]; then
  uv_install -c "$constraints" "$@" && exit 0
  echo "uv could not install $*: trying pip" >&2
fi
exec "$bin/python" -m pip install --quiet --disable-pip-version-check -c "$constraints" "$@"
