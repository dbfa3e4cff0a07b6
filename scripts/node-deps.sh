#!/usr/bin/env bash
# Installs what the JavaScript tests (tests/js/) need into DIR: Node.js and npm from Debian when `node` or `npm` is
# missing (a machine that already has a Node.js >= 18, e.g. from NodeSource, keeps it), then the pinned npm packages
# below into DIR/node_modules. Usage: scripts/node-deps.sh DIR
set -euo pipefail
dir=${1:?usage: node-deps.sh DIR}
packages=(dcrf-client@0.3.0 ws@8.18.0)
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  sudo=""
  if [[ $(id -u) -ne 0 ]]; then sudo="sudo"; fi
  echo "node-deps: installing Debian's nodejs and npm"
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq --no-install-recommends nodejs npm
fi
major=$(node -p 'process.versions.node.split(".")[0]')
if (( major < 18 )); then echo "node-deps: Node.js $(node --version) is too old (18 or newer is needed)"; exit 1; fi
mkdir -p "$dir"
[[ -f "$dir/package.json" ]] || echo '{"name":"syncline-js-tests","private":true}' >"$dir/package.json"
echo "node-deps: npm install ${packages[*]} into $dir (Node.js $(node --version))"
(cd "$dir" && npm install --no-audit --no-fund --loglevel=error "${packages[@]}" >/dev/null)
