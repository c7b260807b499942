#!/usr/bin/env bash
# `make demo` (or another target) on a fresh clone, each recipe line timed.
#   benchmarks/make_demo.sh [cold|warm] [REF] [TARGET]
# cold: a fresh HOME, so empty pip and uv caches and an empty devlooper environment
# cache (a new machine); warm: the download caches of the previous warm run, the
# devlooper environment cache still empty. REF: the commit to clone (default HEAD), to
# compare two commits in one sitting (alternate them: the machine is shared).
set -euo pipefail
mode="${1:-cold}"; ref="${2:-HEAD}"; target="${3:-demo}"
repo="$(cd "$(dirname "$0")/.." && pwd)"
work="$(mktemp -d "${TMPDIR:-/tmp}/make-demo-XXXXXX")"
trap 'rm -rf "$work"' EXIT
git clone -q "$repo" "$work/clone"
git -C "$work/clone" checkout -q "$(git -C "$repo" rev-parse "$ref")"

# make runs each recipe line through this shell, which logs how long the line took.
cat > "$work/timed-shell" <<'SH'
#!/usr/bin/env bash
start=$(date +%s%N); /bin/bash "$@"; rc=$?
printf '%7.2f s  %.100s\n' "$(( $(date +%s%N) - start ))e-9" "$(echo "${@: -1}" | tr '\n' ' ')" >> "$TIMES"
exit $rc
SH
chmod +x "$work/timed-shell"
export TIMES="$work/times"; : > "$TIMES"

if [ "$mode" = cold ]; then
  export HOME="$work/home"
else
  export HOME="${TMPDIR:-/tmp}/make-demo-warm-home"
fi
mkdir -p "$HOME"
export XDG_CACHE_HOME="$HOME/.cache" DEVLOOPER_CACHE_DIR="$work/devlooper-cache"

start=$(date +%s%N)
make -C "$work/clone" --no-print-directory "$target" SHELL="$work/timed-shell" > "$work/make.log" 2>&1 \
  || { tail -30 "$work/make.log"; exit 1; }
cat "$TIMES"
printf '%7.2f s  total (%s, %s, make %s)\n' "$(( $(date +%s%N) - start ))e-9" "$mode" "$(git -C "$work/clone" rev-parse --short HEAD)" "$target"
site="$work/clone/.venv/lib/python3"*/site-packages
echo "$(ls -d $site/*.dist-info | wc -l) distributions in .venv, $(du -sm "$work/clone/.venv" | cut -f1) MB"
