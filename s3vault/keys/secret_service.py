"""The Secret Service (GNOME Keyring, KWallet) over one D-Bus connection per process.

`keyring`'s own Secret Service backend opens a new D-Bus connection for every call,
and each new connection's first request is a property read (secretstorage's
``Collection()`` reads the default collection's ``Label``). gnome-keyring 42 (Debian
12: 42.1) registers a new client asynchronously, from a callback queued on GDBus's
worker thread; a property read dispatched before that finds no client, returns
neither a value nor an error, and GLib aborts the daemon (its log:
``gkd_secret_service_get_pkcs11_session: assertion 'client' failed``,
``invoke_get_property_in_idle_cb: assertion failed: (error != NULL)``). The user's
keyring is then gone until they log in again, and every key read after it fails. It
is rare for one call, but a bulk rotation or an agent and a CLI together make
thousands of calls; it ended our test session's keyring mid-suite several times.

`SecretServiceKeyring` is that backend with two changes: one connection per bus
address, kept for the life of the process (keyring's get/set/delete close it after
each call: ours are the same calls without that) (dropped and made again after a failure,
so a keyring restarted at the next login is found again), whose first request is a
method call (``ReadAlias``); and the default collection opened by its real path,
never through the alias, whose lookup races the same way.

Not a subclass of `keyring`'s backend: importing `keyring` costs about 55 ms (its
backend module pulls in jaraco.context, urllib.request, ssl, tarfile), a third of the
start-up budget of `s3vault key list`. The class below makes the same calls with the
same item attributes (``service``, ``username``, ``application: Python keyring
library``, keyring's "default" scheme, or the scheme and application of the keyring
backend it replaces), so entries written by either are read by the other. Its errors
are `keyring.errors`' classes all the same (imported when one is raised), so callers
catch one set of exceptions.

Not thread-safe, like jeepney's blocking connection under it: callers serialise
their calls (`KeyringStorage` holds one lock around every keyring call of the process).
An item deleted by another process between a search and the read of its secret is
searched for again (other processes write under the key store's lock file, but
readers take no lock).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from jeepney.io.blocking import DBusConnection
    from secretstorage import Collection, Item

_BUS_NAME = "org.freedesktop.secrets"
_DEFAULT_ALIAS = "default"
_NO_OBJECT = "/"
_RACE_RETRIES = 3
# keyring's SecretService backend: its application id and its attribute schemes.
_APPID = "Python keyring library"
_SCHEMES = {
    "default": {"username": "username", "service": "service"},
    "KeePassXC": {"username": "UserName", "service": "Title"},
}


class SecretServiceKeyring:
    """The Secret Service over one kept connection (module docstring): `get_password`,
    `set_password` and `delete_password`, as `keyring`'s backends have them."""

    appid = _APPID
    scheme = "default"
    preferred_collection: str | None = None
    """A collection's D-Bus path, as keyring's config file or KEYRING_PROPERTY_* set it."""

    _connections: ClassVar[dict[str, DBusConnection]] = {}
    _lock: ClassVar[threading.Lock] = threading.Lock()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(scheme={self.scheme!r})"

    @classmethod
    def available(cls) -> bool:
        """Whether a Secret Service runs (or can be started) on the session bus, asked
        of the bus itself (`keyring`'s viability test): never raises."""
        import secretstorage

        try:
            return bool(secretstorage.check_service_availability(cls._connection()))
        except Exception:  # no bus, a refused connection: not available
            cls.forget_connection()
            return False

    def get_preferred_collection(self) -> Collection:
        import secretstorage

        connection = self._connection()
        try:
            # The first request on a new connection must be a method call.
            path = _read_default_alias(connection)
            # A collection chosen in keyring's config file, as keyring's backend does.
            path = self.preferred_collection or path
            if path == _NO_OBJECT:
                # No default collection yet (a fresh keyring): make one, as keyring does.
                collection = secretstorage.create_collection(connection, "Default", _DEFAULT_ALIAS)
            else:
                collection = secretstorage.Collection(connection, path)
        except secretstorage.exceptions.SecretStorageException as exc:
            self.forget_connection()
            from keyring.errors import InitError

            raise InitError(f"Failed to open the collection: {exc}.") from exc
        if collection.is_locked():
            collection.unlock()
            if collection.is_locked():  # the user dismissed the prompt
                raise _locked("Failed to unlock the collection!")
        return collection

    @classmethod
    def replacing(cls, backend: Any) -> SecretServiceKeyring:
        """This backend in place of keyring's, keeping its configured collection,
        attribute scheme and application id."""
        ours = cls()
        for name in ("preferred_collection", "scheme", "appid"):
            if hasattr(backend, name):
                setattr(ours, name, getattr(backend, name))
        return ours

    # keyring's own get/set/delete close the connection after each call: these are
    # the same calls, without that.

    def get_password(self, service: str, username: str) -> str | None:
        from secretstorage.exceptions import ItemNotFoundException

        with self._forgetting_on_error():
            collection = self.get_preferred_collection()
            for attempt in range(_RACE_RETRIES):
                try:
                    for item in collection.search_items(self._query(service, username)):
                        _unlock(item)
                        return str(item.get_secret().decode("utf-8"))
                    return None
                except ItemNotFoundException:
                    # Another process deleted the item between our search and our read
                    # (the old parts of a record it rewrote): search again.
                    if attempt == _RACE_RETRIES - 1:
                        raise
            return None

    def set_password(self, service: str, username: str, password: str) -> None:
        with self._forgetting_on_error():
            collection = self.get_preferred_collection()
            attributes = self._query(service, username, application=self.appid)
            label = f"Password for '{username}' on '{service}'"
            collection.create_item(label, attributes, password.encode("utf-8"), replace=True)

    def delete_password(self, service: str, username: str) -> None:
        from secretstorage.exceptions import ItemNotFoundException

        with self._forgetting_on_error():
            collection = self.get_preferred_collection()
            for item in collection.search_items(self._query(service, username)):
                try:
                    item.delete()
                except ItemNotFoundException:
                    break  # deleted by another process since our search: gone either way
                return
            from keyring.errors import PasswordDeleteError

            raise PasswordDeleteError("No such password!")

    def _query(self, service: str, username: str, **more: str) -> dict[str, str]:
        scheme = _SCHEMES[self.scheme]
        return {scheme["username"]: username, scheme["service"]: service, **more}

    # ---- the connection ----------------------------------------------------------

    @classmethod
    def _connection(cls) -> DBusConnection:
        import secretstorage

        address = os.environ.get("DBUS_SESSION_BUS_ADDRESS", "")
        with cls._lock:
            connection = cls._connections.get(address)
            if connection is None:
                connection = secretstorage.dbus_init()
                cls._connections[address] = connection
            return connection

    @classmethod
    def forget_connection(cls) -> None:
        """Close this bus's connection; the next call opens a new one."""
        address = os.environ.get("DBUS_SESSION_BUS_ADDRESS", "")
        with cls._lock:
            connection = cls._connections.pop(address, None)
        if connection is not None:
            with suppress(OSError):
                connection.close()

    @contextmanager
    def _forgetting_on_error(self) -> Iterator[None]:
        """A failed call may have left the connection broken (the daemon restarted):
        the next call opens a new one. Not after "no such entry" or a dismissed
        unlock prompt: the connection is fine then."""
        try:
            yield
        except Exception as exc:
            # "No such entry" and a dismissed unlock prompt (keyring's classes, by name:
            # keyring.errors is imported only when one is raised).
            if type(exc).__name__ not in {"PasswordDeleteError", "KeyringLocked"}:
                self.forget_connection()
            raise


def _unlock(item: Item) -> None:
    """Unlock ``item`` (a prompt, if the service shows one); KeyringLocked if it stays locked."""
    item.unlock()
    if item.is_locked():  # the user dismissed the prompt
        raise _locked("Failed to unlock the item!")


def _locked(message: str) -> Exception:
    from keyring.errors import KeyringLocked

    return KeyringLocked(message)


def _read_default_alias(connection: DBusConnection) -> str:
    """The default collection's object path, "/" if there is none: a method call."""
    from jeepney import DBusAddress, MessageType, new_method_call
    from secretstorage import defines
    from secretstorage.exceptions import SecretServiceNotAvailableException

    service = DBusAddress(
        defines.SS_PATH, bus_name=_BUS_NAME, interface=defines.SS_PREFIX + "Service"
    )
    reply = connection.send_and_get_reply(
        new_method_call(service, "ReadAlias", "s", (_DEFAULT_ALIAS,))
    )
    if reply.header.message_type is MessageType.error:
        raise SecretServiceNotAvailableException(f"ReadAlias failed: {reply.body}")
    return str(reply.body[0])
