#!/bin/sh
# Install the desktop app's launcher and icon for this user (no root needed):
#   installer/install-desktop.sh              # menu entry + icon
#   installer/install-desktop.sh --autostart  # also start the app in the tray at login
#     (the entry the app's "Start at login" and `s3vault service install` write too,
#     there with the install's real path: one entry, the app starts once)
# The sync agent has its own unit (installer/systemd/) or autostart entry
# (installer/autostart/); the app starts the agent itself when none is running.
set -eu
here=$(cd "$(dirname "$0")/.." && pwd)
data=${XDG_DATA_HOME:-$HOME/.local/share}
config=${XDG_CONFIG_HOME:-$HOME/.config}

install -Dm644 "$here/resources/s3vault.desktop" "$data/applications/s3vault.desktop"
install -Dm644 "$here/resources/icons/s3vault.svg" "$data/icons/hicolor/scalable/apps/s3vault.svg"
if [ "${1:-}" = "--autostart" ]; then
    mkdir -p "$config/autostart"
    # The first line is s3vault.agent.units.MARKER: `s3vault service install` may
    # then replace the entry, and `s3vault service uninstall` remove it.
    { echo '# Written by s3vault; `s3vault service uninstall` removes it.'
      sed 's/^Exec=s3vault gui$/Exec=s3vault gui --minimized/' "$here/resources/s3vault.desktop"
    } > "$config/autostart/s3vault.desktop"
fi
# Refresh the menus' caches where the tools exist (harmless where they do not).
command -v update-desktop-database >/dev/null && update-desktop-database -q "$data/applications" || true
command -v gtk-update-icon-cache >/dev/null && gtk-update-icon-cache -q -t "$data/icons/hicolor" || true
echo "installed: $data/applications/s3vault.desktop"
