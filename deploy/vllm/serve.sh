#!/usr/bin/env bash
# Serve Arch-Router-1.5B with vLLM's OpenAI-compatible server on a GPU host.
#
# Switchyard then uses: routing: {engine: arch-router, endpoint: http://<host>:8000/v1,
#                                 model: Arch-Router, timeout: 1s}
#
# Needs: an NVIDIA GPU (a 1.5B model in bf16 takes ~3 GiB of weights) and `pip install vllm`,
# or run the same arguments in the vllm/vllm-openai container (see README.md).
# Environment overrides: HOST, PORT, MAX_MODEL_LEN, GPU_MEMORY_UTILIZATION; any arguments given
# to this script are passed on to vllm (e.g. ./serve.sh --api-key "$KEY").
set -euo pipefail

HOST="${HOST:-0.0.0.0}"
PORT="${PORT:-8000}"
# Router prompts are the trimmed conversation (~2k tokens) plus the routes; 8k leaves room
# for long route lists without reserving KV cache for contexts the router never sees.
MAX_MODEL_LEN="${MAX_MODEL_LEN:-8192}"
# The router is small; leave the rest of the GPU to other workloads if the card is shared.
GPU_MEMORY_UTILIZATION="${GPU_MEMORY_UTILIZATION:-0.90}"

exec vllm serve katanemo/Arch-Router-1.5B \
  --served-model-name Arch-Router \
  --max-model-len "${MAX_MODEL_LEN}" \
  --gpu-memory-utilization "${GPU_MEMORY_UTILIZATION}" \
  --host "${HOST}" \
  --port "${PORT}" \
  "$@"
