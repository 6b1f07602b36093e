#!/usr/bin/env bash
# One GPU session's checks of the diffusion stage, as run through the session device tool (docs/performance.md,
# "Generated scenes on a GPU"): the GPU, then benchmarks.gpu_diffusion for SD 1.5 and SDXL at full size with
# random weights, TensorRT where it is installed and PyTorch otherwise. Results (markdown, JSON, the log) go to
# $1 (default gpu-proof), with a cProfile of one more request per family under PyTorch; the work folder, ~45 GB for
# SDXL while it runs, is ${WORK:-/tmp/replate-gpu}.
#
#     [FAMILIES="sd sdxl"] bash benchmarks/gpu_proof.sh OUT_DIR
set -euo pipefail
out=${1:-gpu-proof}
work=${WORK:-/tmp/replate-gpu}
mkdir -p "$out" "$work"
export HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$out/gpu.csv"
python3 -c 'import torch, diffusers, transformers; print("torch", torch.__version__, "diffusers", diffusers.__version__, "transformers", transformers.__version__)'
runtime=(--runtime torch)
python3 -c 'import tensorrt, polygraphy' 2>/dev/null && runtime=(--runtime tensorrt)
for family in ${FAMILIES:-sd sdxl}; do
    start=$SECONDS
    profile=()
    [[ ${runtime[1]} == torch ]] && profile=(--profile "$out/profile_torch_$family.txt")
    python3 -m benchmarks.gpu_diffusion --family "$family" "${runtime[@]}" "${profile[@]}" --out "$work" \
        --steps 25 --repeat 10 --request-repeat 3
    echo "$family: $((SECONDS - start)) s"
    cp "$work"/gpu_diffusion*.md "$work"/gpu_diffusion*.json "$out"/
done
