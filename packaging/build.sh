#!/usr/bin/env bash
# Build the sdist, the wheel and the single-file executable `localllm` into dist/.
#
#   bash packaging/build.sh                                 # CPU build
#   CMAKE_ARGS="-DGGML_CUDA=on" bash packaging/build.sh     # the executable with CUDA
#   bash packaging/build.sh --dist /tmp/out --no-binary     # sdist and wheel only
#
# Works in a fresh virtual environment under build/packaging (or
# $LOCALLLM_BUILD_DIR): builds the sdist, builds the wheel from that sdist,
# installs the wheel there and runs PyInstaller on packaging/localllm.spec, so
# the executable holds exactly what the wheel ships. llama-cpp-python's built
# wheel comes from pip's cache, except with CMAKE_ARGS set: then llama.cpp is
# compiled afresh with those flags (a cached CPU build would ignore them).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
dist="$root/dist"
binary=1
while [ $# -gt 0 ]; do
    case "$1" in
        --dist) dist=$(realpath -m "$2"); shift 2 ;;
        --no-binary) binary=0; shift ;;
        -h|--help) sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "error: unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
done
work="${LOCALLLM_BUILD_DIR:-$root/build/packaging}"
venv="$work/venv"
pip=("$venv/bin/python" -m pip --disable-pip-version-check --quiet)
version=$(sed -n 's/^__version__ = "\(.*\)"/\1/p' "$root/localllm/__init__.py")

step() { echo "build.sh: $*" >&2; }
quietly() {  # run a noisy step, showing its log only when it fails
    if ! "$@" >"$work/step.log" 2>&1; then
        tail -30 "$work/step.log" >&2
        echo "error: $1 failed (full log: $work/step.log)" >&2
        exit 1
    fi
}

mkdir -p "$work" "$dist"
rm -rf "$venv"
step "build environment in $venv"
"${PYTHON:-python3}" -m venv "$venv"
quietly "${pip[@]}" install build pyinstaller

step "sdist and wheel of localllm $version into $dist"
quietly "$venv/bin/python" -m build --outdir "$dist" "$root"
wheel="$dist/localllm-$version-py3-none-any.whl"
[ -f "$wheel" ] || { echo "error: $wheel was not built" >&2; exit 1; }
[ "$binary" = 1 ] || exit 0

step "installing the wheel (llama.cpp from pip's cache, or compiled: minutes)"
quietly "${pip[@]}" install "$wheel"
if [ -n "${CMAKE_ARGS:-}" ]; then
    llama=$("$venv/bin/python" -c 'import importlib.metadata as m; print(m.version("llama-cpp-python"))')
    step "recompiling llama-cpp-python $llama with CMAKE_ARGS=$CMAKE_ARGS"
    quietly "${pip[@]}" install --force-reinstall --no-deps --no-cache-dir \
        "llama-cpp-python==$llama"
fi

step "single-file executable (PyInstaller)"
quietly "$venv/bin/pyinstaller" --noconfirm --clean --distpath "$dist" \
    --workpath "$work/pyinstaller" "$root/packaging/localllm.spec"
"$dist/localllm" --version >/dev/null
step "done: $(cd "$dist" && ls localllm-"$version"* localllm | tr '\n' ' ')"
