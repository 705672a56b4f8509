#!/usr/bin/env bash
# Installs quantbench's build and test dependencies from Debian 12 packages.
# CUDA is not installed here: it is optional and found at /usr/local/cuda when present.
set -euo pipefail
sudo_cmd=""
if [ "$(id -u)" -ne 0 ]; then sudo_cmd="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$sudo_cmd apt-get update -qq
$sudo_cmd apt-get install -y -qq --no-install-recommends \
  build-essential cmake pkg-config git \
  libsentencepiece-dev libpcre2-dev libutf8proc-dev nlohmann-json3-dev libcli11-dev catch2 \
  libbenchmark-dev libopenblas-openmp-dev libsqlite3-dev libssl-dev \
  chromium >/dev/null
