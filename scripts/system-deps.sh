#!/usr/bin/env bash
# System packages dlcompat's toolchains need, from Debian's archive; installs only what is missing.
#   libopenblas-dev: the BLAS that Theano and PyTensor link against (without it their convolutions
#                    fall back to slow reference code: a setup artefact, not a finding).
#   chromium:        the headless browser the web runtimes (ONNX Runtime Web, TensorFlow.js) run in,
#                    driven by Playwright (never a browser that Playwright downloads itself).
#   nodejs, npm:     `npm ci` installs those runtimes into web/node_modules; only where npm is missing
#                    (a Node.js from elsewhere, e.g. NodeSource's, already brings its own npm).
set -euo pipefail
packages=(libopenblas-dev chromium)
command -v npm >/dev/null 2>&1 || packages+=(nodejs npm)
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
