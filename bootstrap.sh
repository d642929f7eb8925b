#!/usr/bin/env bash
# Set up clipper-deploy on a Debian machine, as root, then run one job:
#   bash bootstrap.sh demo   # test bed + frontend, deploy playbooks/example.yml, print predictions
#   bash bootstrap.sh test   # the whole test suite (it brings test beds up and down itself)
# Idempotent: what is already installed is kept.
set -euo pipefail
cd "$(dirname "$0")"
job="${1:-}"
case "$job" in demo | test) ;; *) echo "usage: bash bootstrap.sh demo|test" >&2; exit 2 ;; esac

if [ "$(id -u)" != 0 ]; then
  echo "bootstrap.sh needs root (apt-get, network namespaces, dockerd): run it with sudo" >&2
  exit 1
fi

# Debian packages: Docker engine, sshd, mmdebstrap (base image), iproute2 (test bed), tmux
# (the progress test runs a deploy in a terminal and reads the screen), and headless
# Chromium with its driver (the dashboard's browser test).
need=()
for pair in dockerd:docker.io sshd:openssh-server ssh-keygen:openssh-client \
  mmdebstrap:mmdebstrap ip:iproute2 nsenter:util-linux git:git tmux:tmux chromium:chromium \
  chromedriver:chromium-driver; do
  command -v "${pair%%:*}" >/dev/null 2>&1 || [ -x "/usr/sbin/${pair%%:*}" ] || need+=("${pair#*:}")
done
python3 -c 'import ensurepip, venv' 2>/dev/null || need+=(python3-venv)
command -v python3 >/dev/null 2>&1 || need+=(python3 python3-venv)
if [ ${#need[@]} -gt 0 ]; then
  echo "==> Installing Debian packages: ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

# Python: a virtualenv with the project and its test dependencies.
if [ ! -x .venv/bin/python ]; then
  echo "==> Creating virtualenv .venv"
  python3 -m venv .venv
fi
stamp=.venv/.installed-$(sha256sum pyproject.toml | cut -c1-16)
if [ ! -e "$stamp" ]; then
  echo "==> Installing clipper-deploy and its dependencies into .venv"
  # The venv's stock pip, not upgraded: what users have (tests/install checks a fresh one).
  .venv/bin/python -m pip install -q -e '.[test]'
  rm -f .venv/.installed-* && touch "$stamp"
fi

# The registry-free base image of model containers (cached after the first build).
.venv/bin/invoke base-image

case "$job" in
  demo) exec .venv/bin/invoke demo ;;
  test) exec .venv/bin/invoke test ;;
esac
