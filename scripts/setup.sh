#!/usr/bin/env bash
# Idempotent setup: Debian packages, then .venv with pinned Python packages, then dave itself.
set -euo pipefail
cd "$(dirname "$0")/.."

# EGL/Mesa for headless MuJoCo rendering; libsdformat12 validates the generated Gazebo SDF.
DEBS=(libegl1 libgl1 libgles2 libegl-mesa0 libgl1-mesa-dri libsdformat12-12 sdformat-sdf)
missing=()
for deb in "${DEBS[@]}"; do
  dpkg-query -W -f='${Status}' "$deb" 2>/dev/null | grep -q 'install ok installed' || missing+=("$deb")
done
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  echo "setup: installing Debian packages: ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

PYTHON=${PYTHON:-python3.11}
command -v "$PYTHON" >/dev/null || PYTHON=python3
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
# torch==2.13.0 is pinned in requirements.txt: pip takes the CPU build from local disk.
.venv/bin/python -m pip install -q -r requirements.txt
.venv/bin/python -m pip install -q --no-deps \
  -e ros_ws/src/dave_core -e ros_ws/src/dave_nodes -e ros_ws/src/dave_cli -e sim -e models
echo "setup: .venv ready ($(.venv/bin/python --version)); run .venv/bin/dave --help"
