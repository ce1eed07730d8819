#!/usr/bin/env bash
# System packages dlcompat's toolchains need, from Debian's archive; installs only what is missing.
#   libopenblas-dev: the BLAS that Theano and PyTensor link against (without it their convolutions
#                    fall back to slow reference code: a setup artefact, not a finding).
set -euo pipefail
packages=(libopenblas-dev)
missing=()
for p in "${packages[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if ! command -v apt-get >/dev/null; then
  echo "dlcompat needs these system packages: ${missing[*]} (install them with your package manager)" >&2
  exit 1
fi
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
echo "installing system packages: ${missing[*]}" >&2
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
