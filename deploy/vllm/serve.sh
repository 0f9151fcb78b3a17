#!/usr/bin/env bash
# Serve a routing model with vLLM's OpenAI-compatible server on a GPU host.
#
#   ./serve.sh                           Arch-Router-1.5B, for routing: {engine: arch-router,
#                                        endpoint: http://<host>:8000/v1, model: Arch-Router}
#   ROUTER=plano-orchestrator ./serve.sh Plano-Orchestrator-4B, for routing: {engine:
#                                        plano-orchestrator, endpoint: http://<host>:8000/v1,
#                                        model: Plano-Orchestrator}
#
# Needs: an NVIDIA GPU (Arch-Router-1.5B in bf16 ~3 GiB of weights, Plano-Orchestrator-4B ~8 GiB)
# and `pip install vllm`, or the same arguments in the vllm/vllm-openai container (README.md).
# Environment overrides: ROUTER, MODEL (another checkpoint, e.g. katanemo/Plano-Orchestrator-30B-A3B
# or an -FP8 variant), HOST, PORT, MAX_MODEL_LEN, GPU_MEMORY_UTILIZATION; any arguments given to
# this script are passed on to vllm (e.g. ./serve.sh --api-key "$KEY").
set -euo pipefail

ROUTER="${ROUTER:-arch-router}"
HOST="${HOST:-0.0.0.0}"
PORT="${PORT:-8000}"
# The router is small; leave the rest of the GPU to other workloads if the card is shared.
GPU_MEMORY_UTILIZATION="${GPU_MEMORY_UTILIZATION:-0.90}"

case "${ROUTER}" in
  arch-router)
    MODEL="${MODEL:-katanemo/Arch-Router-1.5B}"
    SERVED_NAME=Arch-Router
    # Router prompts are the trimmed conversation (~2k tokens) plus the routes; 8k leaves room
    # for long route lists without reserving KV cache for contexts the router never sees.
    MAX_MODEL_LEN="${MAX_MODEL_LEN:-8192}"
    ;;
  plano-orchestrator)
    MODEL="${MODEL:-katanemo/Plano-Orchestrator-4B}"
    SERVED_NAME=Plano-Orchestrator
    # Plano's protocol holds up to 8,192 tokens of template and conversation, plus the routes.
    MAX_MODEL_LEN="${MAX_MODEL_LEN:-16384}"
    set -- --enable-prefix-caching "$@"  # the prompt's head (instructions, routes) repeats
    ;;
  *)
    echo "ROUTER must be arch-router or plano-orchestrator, got ${ROUTER}" >&2
    exit 2
    ;;
esac

exec vllm serve "${MODEL}" \
  --served-model-name "${SERVED_NAME}" \
  --max-model-len "${MAX_MODEL_LEN}" \
  --gpu-memory-utilization "${GPU_MEMORY_UTILIZATION}" \
  --host "${HOST}" \
  --port "${PORT}" \
  "$@"
