"""What every view shares: the config, the vault, the key store, the jobs, the agent
link and the activity list. One `AppContext` per app.

The vault and key store are built lazily and only from jobs (worker threads): building
them is cheap, but their first use touches S3, KMS or the keyring.
"""

from __future__ import annotations

import threading
from pathlib import Path

from PySide6.QtCore import QObject, Signal

from s3vault.config.load import default_config_path, load_config
from s3vault.config.model import Config
from s3vault.gui.activity import ActivityLog
from s3vault.gui.agent_link import AgentLink
from s3vault.gui.jobs import JobRunner
from s3vault.keys.open import keystore_from_config
from s3vault.keys.store import KeyStore
from s3vault.vault.factory import build_vault
from s3vault.vault.pages import warm_up
from s3vault.vault.vault import Vault


class AppContext(QObject):
    """``config_changed`` fires after `reload_config` read a new config."""

    config_changed = Signal()

    def __init__(
        self,
        config_path: Path | None = None,
        *,
        agent: AgentLink | None = None,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self.config_path = config_path if config_path is not None else default_config_path()
        self.config: Config = self._load()
        self.jobs = JobRunner(parent=self)
        self.activity = ActivityLog(self)
        self.agent = agent if agent is not None else AgentLink(parent=self)
        # The agent's per-file results join the activity list whether or not a window
        # shows it (the tray's recent activity reads it too).
        self.activity.follow(self.agent)
        self._lock = threading.Lock()
        self._vault: Vault | None = None
        self._keystore: KeyStore | None = None

    def _load(self) -> Config:
        return load_config(self.config_path if self.config_path.exists() else None)

    def reload_config(self) -> None:
        """Read the config file again (after the settings view or setup wrote it);
        ConfigError if it is invalid (the old config stays in use)."""
        config = self._load()
        with self._lock:
            self.config = config
            self._vault = None
            self._keystore = None
        self.config_changed.emit()

    def keystore(self) -> KeyStore:
        """The key store of the config (call from a job: first use touches the keyring)."""
        with self._lock:
            if self._keystore is None:
                self._keystore = keystore_from_config(self.config)
            return self._keystore

    def warm_up(self) -> None:
        """Build the vault and its S3 client (call from a job, at start): the first
        listing then does not pay for it while the user waits."""
        warm_up(self.vault())

    def vault(self) -> Vault:
        """The vault of the config (call from a job: first use touches S3)."""
        keystore = self.keystore()
        with self._lock:
            if self._vault is None:
                self._vault = build_vault(self.config, keystore_factory=lambda: keystore)
            return self._vault
