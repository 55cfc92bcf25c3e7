#!/usr/bin/env bash
# The device install, checked: build the wheel, install it WITHOUT extras into a fresh venv (no torch),
# then run the device commands on a bundle exported with the full (export) venv; then add the [litert] extra
# (LiteRT's runtime, still no torch) and run the same commands on the bundle's .tflite, and compare on the export
# folder (each file judged against its golden outputs).
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

# Run a command that must refuse: exit 2, one line, naming $1 (what to install).
one_line_exit_2() {
    local needle="$1"; shift
    set +e
    message="$("$@" 2>&1)"
    code=$?
    set -e
    if [ "$code" -ne 2 ] || [ "$(printf '%s\n' "$message" | wc -l)" -ne 1 ] || [[ "$message" != *"$needle"* ]]; then
        echo "FAIL: '$*' gave exit $code: $message" >&2
        exit 1
    fi
    echo "$message"
}

echo "== export a small bundle with the export venv ($full)"
"$full/bin/edgecnn" export mobilenet_v2 --input-size 64 --format onnx,tflite --bundle --out "$work/export" >/dev/null
model="$work/export/mobilenet_v2.fp32.onnx"
tflite="$work/export/mobilenet_v2.fp32.tflite"
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

echo "== a .tflite without LiteRT installed: one line naming the extra, exit 2"
one_line_exit_2 'edgecnn[litert]' "$dev/edgecnn" selftest "$bundle"

echo "== add the [litert] extra: LiteRT's runtime, still no torch"
"$dev/pip" install -q "$(ls "$work"/dist/edgecnn-*.whl)[litert]"
if "$dev/pip" show torch >/dev/null 2>&1; then
    echo "FAIL: the [litert] extra pulled in torch" >&2
    exit 1
fi
"$dev/edgecnn" predict "$tflite" "$work/image.png"
"$dev/edgecnn" bench "$model" "$tflite" --runs 5 --warmup 1 --json | "$dev/python" -c "import json, sys; json.load(sys.stdin)"
"$dev/edgecnn" selftest "$bundle"

echo "== compare on the device: the export folder's .onnx and .tflite judged against its golden outputs"
"$dev/edgecnn" compare "$work/export" --seconds 0.2 --json > "$work/compare.json"
"$dev/python" - "$work/compare.json" <<'PY'
import json, sys
result = json.load(open(sys.argv[1]))
rows = {(r["file"], r["status"]) for r in result["rows"]}
want = {("mobilenet_v2.fp32.onnx", "verified"), ("mobilenet_v2.fp32.tflite", "verified")}
assert want <= rows, rows
assert result["golden"]["source"] == "pytorch" and result["recommended"] is not None, result["recommended"]
print("compare:", sorted(rows), "recommended:", result["recommended"])
PY

echo "== export needs the export stack: one line, exit 2"
one_line_exit_2 'edgecnn[export]' "$dev/edgecnn" export mobilenet
echo "device check passed"
