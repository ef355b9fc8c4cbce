#!/bin/sh
# Install s3vault for this user, into its own virtualenv; needs nothing but Python 3.11+.
# Run with --help for the options; docs/install.md explains it.
set -eu

usage() {
    cat <<'EOF'
Usage: install.sh [OPTIONS] [SOURCE]

Install s3vault into a virtualenv of its own and link its commands into ~/.local/bin.
Needs only Python 3.11+ (python3, or $PYTHON). Run it again to update: it is idempotent.

SOURCE  a wheel (s3vault-*.whl), an sdist (s3vault-*.tar.gz), a source directory, or a
        requirement such as 's3vault==0.1.0'. Default: 's3vault' from the package index.

Options:
  --gui          also the desktop app (the extra `gui`: PySide6), linking s3vault-gui
  --venv DIR     the virtualenv (default: ${XDG_DATA_HOME:-~/.local/share}/s3vault/venv)
  --bin DIR      where the commands are linked (default: ~/.local/bin)
  --uninstall    run `s3vault service uninstall`, remove the links and the virtualenv
  -h, --help     this help

Examples:
  installer/install.sh                                  # from the index
  installer/install.sh --gui dist/s3vault-0.1.0-py3-none-any.whl
  installer/install.sh .                                # this checkout
  installer/install.sh && s3vault service install       # then run the agent as a service
  installer/install.sh --uninstall

Exit codes: 0 done, 1 a step failed (its message says which), 2 usage, 8 a file in the
way (a command of that name not linked by this script: remove it or use --bin).
EOF
}

die() { code=$1; shift; printf 'install.sh: %s\n' "$*" >&2; exit "$code"; }

gui=no
uninstall=no
venv=${XDG_DATA_HOME:-$HOME/.local/share}/s3vault/venv
bin=$HOME/.local/bin
source=
while [ $# -gt 0 ]; do
    case $1 in
        --gui) gui=yes ;;
        --uninstall) uninstall=yes ;;
        --venv) [ $# -ge 2 ] || die 2 "--venv needs a directory"; venv=$2; shift ;;
        --venv=*) venv=${1#--venv=} ;;
        --bin) [ $# -ge 2 ] || die 2 "--bin needs a directory"; bin=$2; shift ;;
        --bin=*) bin=${1#--bin=} ;;
        -h|--help) usage; exit 0 ;;
        -*) die 2 "unknown option $1 (see --help)" ;;
        *) [ -z "$source" ] || die 2 "one SOURCE only (see --help)"; source=$1 ;;
    esac
    shift
done
case $venv in /*) ;; *) venv=$(pwd)/$venv ;; esac
case $bin in /*) ;; *) bin=$(pwd)/$bin ;; esac

commands="s3vault"
[ "$gui" = yes ] && commands="s3vault s3vault-gui"

# A link of ours points into the venv; anything else at that name is not ours to replace.
check_link() {
    target=$bin/$1
    if [ -L "$target" ]; then
        [ "$(readlink "$target")" = "$venv/bin/$1" ] && return 0
    fi
    [ -e "$target" ] || [ -L "$target" ] || return 0
    die 8 "$target exists and is not a link into $venv: remove it, or use --bin DIR"
}

if [ "$uninstall" = yes ]; then
    if [ -x "$venv/bin/s3vault" ]; then
        "$venv/bin/s3vault" service uninstall || die 1 "s3vault service uninstall failed"
    fi
    for name in s3vault s3vault-gui; do
        if [ -L "$bin/$name" ] && [ "$(readlink "$bin/$name")" = "$venv/bin/$name" ]; then
            rm -f "$bin/$name"
            echo "removed: $bin/$name"
        fi
    done
    if [ -d "$venv" ]; then
        # Only ever a virtualenv: never rm -rf a directory that is something else.
        [ -f "$venv/pyvenv.cfg" ] || die 8 "$venv is not a virtualenv (no pyvenv.cfg): not removed"
        rm -rf "$venv"
        echo "removed: $venv"
    fi
    exit 0
fi

for name in $commands; do check_link "$name"; done

python=${PYTHON:-python3}
command -v "$python" >/dev/null 2>&1 || die 1 "$python not found: install Python 3.11 or newer"
"$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' ||
    die 1 "$python is $("$python" -c 'import sys; print(sys.version.split()[0])'); s3vault needs 3.11+"

if [ ! -x "$venv/bin/python" ]; then
    mkdir -p "$(dirname "$venv")"
    "$python" -m venv "$venv" ||
        die 1 "cannot create a virtualenv in $venv (Debian/Ubuntu: apt install python3-venv)"
    echo "created: $venv"
fi

# What pip installs: a path (wheel, sdist, directory) absolute, with the extra if asked.
case $source in
    '') spec=s3vault ;;
    /*) spec=$source ;;
    *) if [ -e "$source" ]; then spec=$(cd "$(dirname "$source")" && pwd)/$(basename "$source")
       else spec=$source; fi ;;
esac
[ "$gui" = yes ] && spec="$spec[gui]"

export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1
"$venv/bin/python" -m pip install --quiet --upgrade "$spec" || die 1 "pip install $spec failed"

mkdir -p "$bin"
for name in $commands; do
    [ -x "$venv/bin/$name" ] || die 1 "$venv/bin/$name is missing after the install"
    if [ ! -L "$bin/$name" ]; then
        ln -s "$venv/bin/$name" "$bin/$name"
        echo "linked: $bin/$name"
    fi
done

version=$("$venv/bin/s3vault" --version) || die 1 "the installed s3vault does not run"
echo "installed: $version in $venv"
case ":$PATH:" in
    *":$bin:"*) ;;
    *) echo "note: $bin is not on PATH; add it (e.g. in ~/.profile: PATH=\"$bin:\$PATH\")" ;;
esac
echo "next: s3vault service install    # run the sync agent as a user service"
