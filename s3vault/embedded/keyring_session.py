"""A private, unlocked OS keyring (gnome-keyring over its own D-Bus session bus).

On a headless machine (CI, a server, a container) there is no Secret Service, so
``keyring`` falls back to its ``fail`` backend. ``PrivateKeyring`` starts one for the
duration of a ``with`` block: a private ``dbus-daemon`` and ``gnome-keyring-daemon``
whose "login" collection is created and unlocked with a random password. Clients reach
it through ``DBUS_SESSION_BUS_ADDRESS`` (see :meth:`PrivateKeyring.env`).

Needs the Debian packages ``gnome-keyring`` and ``dbus`` (``dbus-x11`` on Debian 12
for ``dbus-launch``-style sessions; ``dbus-daemon`` itself comes with ``dbus``).

Everything lives in a temporary directory removed on exit: secrets stored in a private
keyring last only as long as it runs. The unlock password is generated here, given to
gnome-keyring on its standard input, and forgotten; it is never in argv or in a file.

Both daemons run in a session of their own (no terminal, no process group shared with
the caller: a Ctrl-C, a SIGHUP or a ``killpg`` meant for the caller never reaches
them) and are stopped by PID. What can still end them is a crash of gnome-keyring
itself: see :func:`_open_secret_service`.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import selectors
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import IO, TYPE_CHECKING

from s3vault.embedded import LocalServiceError

if TYPE_CHECKING:
    from jeepney.io.blocking import DBusConnection

SECRETS_BUS_NAME = "org.freedesktop.secrets"
_START_TIMEOUT = 15.0
_STOP_TIMEOUT = 5.0
# Unix socket paths are limited to 108 bytes (sun_path) on Linux.
_MAX_SOCKET_PATH = 100
_APT_HINT = "Install the Debian packages: apt-get install gnome-keyring dbus-x11 libsecret-tools"

# A session bus without <servicedir>: nothing is ever D-Bus-activated on it. With the
# standard session config, a request that arrives while gnome-keyring is not (or no
# longer) on the bus would auto-start a second, locked daemon that we did not start
# and would not stop; and gnome-keyring's prompter (gcr-prompter) would be launched
# and hang without a display. Here such requests fail at once instead.
_BUS_CONFIG = """<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>session</type>
  <keep_umask/>
  <listen>unix:path={socket}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
    <allow own="*"/>
  </policy>
</busconfig>
"""


def _require(binary: str) -> str:
    found = shutil.which(binary)
    if not found:
        raise LocalServiceError(f"`{binary}` was not found on PATH.", hint=_APT_HINT)
    return found


def _stop_process(proc: subprocess.Popen[bytes] | None, timeout: float) -> None:
    """SIGTERM ``proc`` (by its PID), SIGKILL after ``timeout`` s, and reap it."""
    if proc is None:
        return
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _read_line(stream: IO[bytes], timeout: float) -> bytes:
    """One line from a child's pipe, or b"" if none came within ``timeout`` s."""
    with selectors.DefaultSelector() as sel:
        sel.register(stream, selectors.EVENT_READ)
        if not sel.select(timeout):
            return b""
    return stream.readline()


class PrivateKeyring:
    """A private D-Bus session bus with an unlocked gnome-keyring Secret Service.

    ``with PrivateKeyring() as kr:`` starts both daemons and returns once a secret can be
    stored, read and deleted in the default collection; :meth:`env` gives the variables
    a client process needs, :meth:`apply_to_environ` sets them in this process (and makes
    ``keyring`` choose its backend again) until :meth:`stop`. Raises
    :class:`~s3vault.embedded.LocalServiceError` if a binary is missing or the service does
    not become usable within ``start_timeout`` seconds.

    Everything, the keyring file included, lives in a temporary directory that
    :meth:`stop` removes: secrets stored here are gone when it stops. ``parent`` is
    where that directory goes (default: the system temp dir); keep it short, the bus
    socket path must fit in 108 bytes.
    """

    def __init__(
        self, parent: Path | str | None = None, *, start_timeout: float = _START_TIMEOUT
    ) -> None:
        self.parent = Path(parent) if parent is not None else None
        self.start_timeout = start_timeout
        self.dir: Path | None = None
        self.address: str | None = None
        self._dbus: subprocess.Popen[bytes] | None = None
        self._daemon: subprocess.Popen[bytes] | None = None
        self._saved_environ: dict[str, str | None] | None = None

    # -- what clients need ------------------------------------------------------------

    @property
    def dbus_pid(self) -> int | None:
        return self._dbus.pid if self._dbus is not None else None

    @property
    def daemon_pid(self) -> int | None:
        """PID of gnome-keyring-daemon, or None when stopped."""
        return self._daemon.pid if self._daemon is not None else None

    @property
    def pids(self) -> list[int]:
        return [p for p in (self.dbus_pid, self.daemon_pid) if p is not None]

    def env(self) -> dict[str, str]:
        """Variables a client process needs to use this keyring (merge into its env)."""
        if self.address is None:
            raise RuntimeError("PrivateKeyring is not running")
        return {"DBUS_SESSION_BUS_ADDRESS": self.address}

    def apply_to_environ(self) -> None:
        """Set :meth:`env` in ``os.environ`` (inherited by later subprocesses).

        The previous values come back on :meth:`stop` or :meth:`restore_environ`.
        """
        variables = self.env()
        if self._saved_environ is None:
            self._saved_environ = {k: os.environ.get(k) for k in variables}
        os.environ.update(variables)
        _redetect_keyring_backend()

    def restore_environ(self) -> None:
        """Undo :meth:`apply_to_environ`; a no-op if it was not called."""
        saved, self._saved_environ = self._saved_environ, None
        if saved is None:
            return
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        _redetect_keyring_backend()

    # -- life cycle ---------------------------------------------------------------------

    def _daemon_env(self, base: Path) -> dict[str, str]:
        env = {
            k: v
            for k, v in os.environ.items()
            # No display: gnome-keyring must never try to show a prompt. No AWS keys:
            # the daemons have no use for them.
            if k not in ("DISPLAY", "WAYLAND_DISPLAY", "GNOME_KEYRING_CONTROL")
            and not k.startswith("AWS_")
        }
        env.update(
            HOME=str(base / "home"),
            XDG_RUNTIME_DIR=str(base / "runtime"),
            XDG_DATA_HOME=str(base / "data"),
            XDG_CONFIG_HOME=str(base / "config"),
            XDG_CACHE_HOME=str(base / "cache"),
        )
        if self.address:
            env["DBUS_SESSION_BUS_ADDRESS"] = self.address
        return env

    def start(self) -> PrivateKeyring:
        """Start the bus and the keyring and wait until a secret round-trips."""
        if self._daemon is not None:
            return self
        dbus_daemon = _require("dbus-daemon")
        gnome_keyring = _require("gnome-keyring-daemon")
        base = Path(tempfile.mkdtemp(prefix="s3vault-keyring-", dir=self.parent))
        self.dir = base
        try:
            for sub in ("home", "runtime", "data", "config", "cache"):
                (base / sub).mkdir(mode=0o700)
            socket_path = base / "bus"
            if len(str(socket_path)) > _MAX_SOCKET_PATH:
                raise LocalServiceError(
                    f"The D-Bus socket path {socket_path} is too long for a unix socket.",
                    hint="Give PrivateKeyring a shorter parent directory.",
                )
            config = base / "bus.conf"
            config.write_text(_BUS_CONFIG.format(socket=socket_path), encoding="utf-8")
            self._start_bus(dbus_daemon, config, base)
            self._start_daemon(gnome_keyring, base)
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def _start_bus(self, dbus_daemon: str, config: Path, base: Path) -> None:
        # --nofork keeps dbus-daemon our child: we stop it by PID and reap it ourselves
        # (a forked daemon is re-parented to PID 1, which may never reap it).
        # The address comes on a pipe of its own, which dbus-daemon closes once it has
        # written it; its stdout goes to the log. (On stdout, a pipe we stop reading
        # after one line, any later write would kill it: it does not ignore SIGPIPE.)
        read_end, write_end = os.pipe()
        try:
            with open(base / "dbus.log", "ab") as log:
                self._dbus = subprocess.Popen(
                    [
                        dbus_daemon,
                        f"--config-file={config}",
                        "--nofork",
                        f"--print-address={write_end}",
                    ],
                    env=self._daemon_env(base),
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=log,
                    pass_fds=(write_end,),
                    start_new_session=True,
                )
        except BaseException:
            os.close(read_end)
            raise
        finally:
            os.close(write_end)
        # The address is printed once the bus listens: that is the readiness signal.
        with os.fdopen(read_end, "rb") as address_pipe:
            line = _read_line(address_pipe, self.start_timeout)
        if not line.strip():
            raise LocalServiceError(
                "dbus-daemon did not start.", hint=self._log_tail(base / "dbus.log")
            )
        self.address = line.decode().strip()

    def _start_daemon(self, gnome_keyring: str, base: Path) -> None:
        password = secrets.token_urlsafe(32)
        with open(base / "gnome-keyring.log", "ab") as log:
            self._daemon = subprocess.Popen(
                [gnome_keyring, "--foreground", "--unlock", "--components=secrets"],
                env=self._daemon_env(base),
                stdin=subprocess.PIPE,
                stdout=log,
                stderr=log,
                start_new_session=True,
            )
        assert self._daemon.stdin is not None
        # --unlock reads the password up to EOF; on first start it creates the "login"
        # collection with it, unlocked, and makes it the "default" alias.
        try:
            self._daemon.stdin.write(password.encode())
            self._daemon.stdin.close()
        except BrokenPipeError:
            pass  # it died at once: _wait_ready reports it with its log

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.start_timeout
        last_error: Exception | None = None
        while time.monotonic() < deadline:
            for name, proc in (("dbus-daemon", self._dbus), ("gnome-keyring-daemon", self._daemon)):
                assert proc is not None and self.dir is not None
                if proc.poll() is not None:
                    log = "dbus.log" if proc is self._dbus else "gnome-keyring.log"
                    raise LocalServiceError(
                        f"{name} exited with code {proc.returncode} while starting.",
                        hint=self._log_tail(self.dir / log),
                    )
            try:
                _probe_secret_service(self.address or "")
                return
            except Exception as e:  # any failure just means "not yet"
                last_error = e
            time.sleep(0.05)
        assert self.dir is not None
        raise LocalServiceError(
            f"The private Secret Service did not become usable within "
            f"{self.start_timeout:.0f} s (last error: {last_error!r}).",
            hint=self._log_tail(self.dir / "gnome-keyring.log"),
        )

    @staticmethod
    def _log_tail(path: Path, lines: int = 20) -> str:
        try:
            text = path.read_text(encoding="utf-8", errors="replace")
        except OSError as e:
            return f"(no log: {e})"
        return f"Last lines of {path}:\n" + "\n".join(text.splitlines()[-lines:])

    def failure(self) -> str | None:
        """None while both daemons run; else which one exited, how, and its log."""
        for name, proc, log in (
            ("dbus-daemon", self._dbus, "dbus.log"),
            ("gnome-keyring-daemon", self._daemon, "gnome-keyring.log"),
        ):
            if proc is None or proc.poll() is None:
                continue
            code = proc.returncode
            how = f"was killed by signal {-code}" if code < 0 else f"exited with code {code}"
            tail = self._log_tail(self.dir / log) if self.dir else "(no log)"
            return f"{name} (pid {proc.pid}) {how}.\n{tail}"
        return None

    def stop(self) -> None:
        """Stop gnome-keyring, then the bus, by PID; remove the directory; restore the
        variables :meth:`apply_to_environ` changed. Idempotent."""
        daemon, self._daemon = self._daemon, None
        bus, self._dbus = self._dbus, None
        try:
            _stop_process(daemon, _STOP_TIMEOUT)
        finally:
            _stop_process(bus, _STOP_TIMEOUT)
            if self.dir is not None:
                shutil.rmtree(self.dir, ignore_errors=True)
                self.dir = None
            self.address = None
            self.restore_environ()

    def __enter__(self) -> PrivateKeyring:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"<PrivateKeyring address={self.address!r} pids={self.pids}>"


@contextlib.contextmanager
def _secret_service_connection(address: str) -> Iterator[DBusConnection]:
    from jeepney.io.blocking import open_dbus_connection

    conn = open_dbus_connection(bus=address)
    try:
        yield conn
    finally:
        conn.close()


def _open_secret_service(conn: DBusConnection) -> str:
    """The default collection's object path ("/" if none), asked in the one way that
    cannot crash gnome-keyring 42.

    Why: gnome-keyring 42 (Debian 12: 42.1) registers a new D-Bus client from a
    callback queued by a message filter on GDBus's worker thread. If a new
    connection's *first* request is a property read, it can be dispatched before its
    sender is registered; the getter then returns neither a value nor an error and
    GLib aborts the daemon (log: ``gkd_secret_service_get_pkcs11_session: assertion
    'client' failed``, ``invoke_get_property_in_idle_cb: assertion failed: (error !=
    NULL)``; SIGABRT). secretstorage's ``Collection()`` starts with such a read (the
    ``Label`` of ``/aliases/default``). Rare with one client at a time, within
    seconds with several, likelier on a busy machine. So: a method call first
    (``ReadAlias``), then the collection by its real path, never the alias (whose
    lookup races too). The ``keyring`` library opens a new connection for each
    call and begins with that read: this is what ended the test session's keyring
    mid-suite, until s3vault's key store kept one connection and asked this way too
    (s3vault/keys/secret_service.py; docs/development.md).
    """
    import secretstorage
    from jeepney import DBusAddress, MessageType, new_method_call

    service = DBusAddress(
        secretstorage.defines.SS_PATH,
        bus_name=SECRETS_BUS_NAME,
        interface=secretstorage.defines.SS_PREFIX + "Service",
    )
    reply = conn.send_and_get_reply(new_method_call(service, "ReadAlias", "s", ("default",)))
    if reply.header.message_type is MessageType.error:
        raise LocalServiceError(f"the Secret Service refused ReadAlias: {reply.body}")
    return str(reply.body[0])


def _probe_secret_service(address: str) -> None:
    """Store, read back and delete a secret in the default collection; raise if any fails.

    These are the calls ``keyring``'s SecretService backend makes, done with
    secretstorage on an explicit connection so that os.environ is not touched.
    """
    import secretstorage
    from jeepney.bus_messages import message_bus
    from jeepney.io.blocking import Proxy

    with _secret_service_connection(address) as conn:
        # Wait for the daemon to own its name first: asking earlier would fail anyway,
        # and on a bus with activation it would start a second daemon.
        (has_owner,) = Proxy(message_bus, conn).NameHasOwner(SECRETS_BUS_NAME)
        if not has_owner:
            raise LocalServiceError(f"{SECRETS_BUS_NAME} is not on the bus yet")
        path = _open_secret_service(conn)
        if path == "/":
            raise LocalServiceError("no default collection yet")
        collection = secretstorage.Collection(conn, path)
        if collection.is_locked():
            raise LocalServiceError("the default collection is locked")
        attributes = {"application": "s3vault-readiness", "probe": secrets.token_hex(8)}
        item = collection.create_item("s3vault readiness probe", attributes, b"probe")
        try:
            found = list(collection.search_items(attributes))
            if len(found) != 1 or found[0].get_secret() != b"probe":
                raise LocalServiceError("a stored secret did not read back")
        finally:
            item.delete()


def _redetect_keyring_backend() -> None:
    """Make ``keyring`` choose its backend again after D-Bus variables changed.

    ``keyring`` probes its backends once per process (``get_all_keyring`` is wrapped in
    ``jaraco.functools.once``) and caches the winner; if it was asked before the bus
    address was set, it holds the ``fail`` backend for good. Not imported yet: nothing
    to do, it will look at the new environment on first use.
    """
    if "keyring.core" not in sys.modules:
        return
    import keyring.backend
    import keyring.core

    reset = getattr(keyring.backend.get_all_keyring, "reset", None)
    if callable(reset):
        with contextlib.suppress(KeyError):  # KeyError: it had not run yet
            reset()
    keyring.core.init_backend()


def keyring_available() -> bool:
    """Whether this environment already has a usable OS keyring (no prompt-less dead end).

    True for the platform keyrings (macOS Keychain, Windows Credential Manager, KWallet)
    and for a Secret Service whose default collection is unlocked, or can be unlocked by
    a prompt because a graphical session is there to show it. False with no keyring at
    all, a Secret Service with nothing usable headless, or a plaintext fallback
    (``keyrings.alt``), which s3vault never uses silently.
    """
    try:
        import keyring
        from keyring.backends import chainer
    except ImportError:
        return False
    backend = keyring.get_keyring()
    backends = backend.backends if isinstance(backend, chainer.ChainerBackend) else [backend]
    for b in backends:
        module = type(b).__module__
        if module in ("keyring.backends.fail", "keyring.backends.null"):
            continue
        if module.startswith("keyrings."):
            continue  # keyrings.alt: secrets in plain files, never an OS keyring to us
        if module != "keyring.backends.SecretService" or _secret_service_usable():
            return True
    return False


def _secret_service_usable() -> bool:
    address = os.environ.get("DBUS_SESSION_BUS_ADDRESS")
    if not address:
        return False
    graphical = bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))
    try:
        import secretstorage

        with _secret_service_connection(address) as conn:
            path = _open_secret_service(conn)
            if path == "/":
                return graphical  # no default collection: creating one needs a prompt
            return graphical or not secretstorage.Collection(conn, path).is_locked()
    except Exception:
        return False
