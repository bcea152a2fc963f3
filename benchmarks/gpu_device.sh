#!/usr/bin/env bash
# benchmarks/bench_gpu.py on the lent GPU machine, one step per device call, from the
# repository root there (docs/benchmarks.md, "On a GPU"; the wheels: benchmarks/gpu_wheels.sh):
#   bash benchmarks/gpu_device.sh part      keep the carried .whl-ort/part-* in /tmp/ort
#   bash benchmarks/gpu_device.sh install   onnxruntime-gpu from the parts + .whl/*.whl → /tmp/site
#   bash benchmarks/gpu_device.sh prepare   bench_gpu.py --prepare: export, corpus, caches (CPU)
#   bash benchmarks/gpu_device.sh measure   bench_gpu.py: training, then serving
# Extra arguments go to bench_gpu.py; its log (and the rows as JSON) land in $OUT.
set -euo pipefail
cd "$(dirname "$0")/.."
step=${1:?say part, install, prepare or measure}
shift
out=${OUT:-/tmp}
site=/tmp/site
# the project's packages under their import names (training/ is slt_training, ...), no install
mkdir -p /tmp/slt-path
for pair in slt_serve:slt_serve slt_training:training slt_export:export slt_pipeline:pipeline; do
    ln -sfn "$PWD/${pair#*:}" "/tmp/slt-path/${pair%%:*}"
done
export PYTHONPATH=$site:/tmp/slt-path PYTHONUNBUFFERED=1
case $step in
part)
    mkdir -p /tmp/ort
    cp .whl-ort/part-* .whl-ort/NAME /tmp/ort/
    ls -l /tmp/ort
    ;;
install)
    wheel=/tmp/$(cat /tmp/ort/NAME)
    cat /tmp/ort/part-* >"$wheel"
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target "$site" .whl/*.whl "$wheel"
    python3 -c "import onnxruntime as o; print('onnxruntime', o.__version__, o.get_available_providers())"
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
    ;;
prepare)
    python3 benchmarks/bench_gpu.py --prepare "$@" 2>&1 | tee "$out/prepare.log"
    ;;
measure)
    python3 benchmarks/bench_gpu.py --json "$out/bench_gpu.json" "$@" 2>&1 | tee "$out/bench_gpu.log"
    ;;
*)
    echo "error: unknown step $step; say part, install, prepare or measure" >&2
    exit 2
    ;;
esac
