#!/usr/bin/env bash
# Installs the Debian packages that are not installed yet, from scripts/debian-packages.txt (building and running the
# server) and, unless told `run`, scripts/debian-packages-test.txt (tests, benchmarks, fuzzing).
# Usage: scripts/install-deps.sh [all|run]   (default all). Runs apt-get as root, or through sudo when not root.
# Installs nothing from anywhere else.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
case "${1:-all}" in
  run) lists=("$here/debian-packages.txt") ;;
  all) lists=("$here/debian-packages.txt" "$here/debian-packages-test.txt") ;;
  *) echo "usage: install-deps.sh [all|run]" >&2; exit 2 ;;
esac
mapfile -t wanted < <(sed -e 's/#.*//' -e '/^[[:space:]]*$/d' "${lists[@]}")
missing=()
for pkg in "${wanted[@]}"; do
  status=$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)
  [[ "$status" == "install ok installed" ]] || missing+=("$pkg")
done
if [[ ${#missing[@]} -eq 0 ]]; then
  echo "install-deps: all ${#wanted[@]} packages present"
  exit 0
fi
sudo=""
if [[ $(id -u) -ne 0 ]]; then sudo="sudo"; fi
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
