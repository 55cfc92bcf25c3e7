#!/usr/bin/env bash
# The device install, checked: build the wheel, install it WITHOUT extras into a fresh venv (no torch),
# then run the device commands on a bundle exported with the full (export) venv.
#
#   tools/device_check.sh [EXPORT_VENV]     (default: .venv, which has the export stack)
#
# Needs PyPI for the device venv's dependencies (numpy, onnxruntime, pillow, typer).
set -euo pipefail
cd "$(dirname "$0")/.."
full="${1:-.venv}"
work="$(mktemp -d "${TMPDIR:-/tmp}/edgecnn-device.XXXXXX")"
had_build=0; [ -e build ] && had_build=1
# the wheel build leaves setuptools' build/ behind: removed again unless it was there before
trap 'rm -rf "$work"; [ "$had_build" = 1 ] || rm -rf build' EXIT

echo "== export a small bundle with the export venv ($full)"
"$full/bin/edgecnn" export mobilenet_v2 --input-size 64 --bundle --out "$work/export" >/dev/null
model="$work/export/mobilenet_v2.fp32.onnx"
bundle="$work/export/bundle"
"$full/bin/python" -c "from PIL import Image; Image.new('RGB', (80, 64), (200, 120, 40)).save('$work/image.png')"

echo "== build the wheel, install it without extras into a fresh venv"
"$full/bin/pip" wheel --no-deps -q -w "$work/dist" .
python3 -m venv "$work/device"
dev="$work/device/bin"
"$dev/pip" install -q "$work"/dist/edgecnn-*.whl
if "$dev/pip" show torch >/dev/null 2>&1; then
    echo "FAIL: the base install pulled in torch" >&2
    exit 1
fi
echo "torch: not installed (as it should be)"

echo "== device commands"
"$dev/edgecnn" list >/dev/null
"$dev/edgecnn" info mobilenet >/dev/null
"$dev/edgecnn" providers >/dev/null
"$dev/edgecnn" predict "$model" "$work/image.png"
"$dev/edgecnn" bench "$model" --runs 5 --warmup 1 --json | "$dev/python" -c "import json, sys; json.load(sys.stdin)"
"$dev/edgecnn" selftest "$bundle"

echo "== export needs the export stack: one line, exit 2"
set +e
message="$("$dev/edgecnn" export mobilenet 2>&1)"
code=$?
set -e
if [ "$code" -ne 2 ] || [ "$(printf '%s\n' "$message" | wc -l)" -ne 1 ] || [[ "$message" != *'edgecnn[export]'* ]]; then
    echo "FAIL: 'edgecnn export' without torch gave exit $code: $message" >&2
    exit 1
fi
echo "$message"
echo "device check passed"
