"""The Ansible role in installer/ansible/, run for real with `ansible-playbook`.

Once per module: a wheel of this worktree is built, and the example playbook is run
against localhost (`-c local`) three times, as a new machine would see it: a first run
that installs s3vault into a virtualenv, renders the config and imports a master key
into the session's private keyring; a second run that must change nothing; a run in
check mode that must report nothing to change. Everything the runs write goes into the
module's temp dir: a HOME with its XDG dirs, Ansible's temp dirs and its log. The key
is made here and reaches Ansible only in an ansible-vault encrypted extra-vars file.
The last test runs the role's key step alone (its tag) for an RSA key and a KMS key.

The service step runs too, with `--no-start` (s3vault_service_start: false): no agent
is started by a test; this machine has no systemd user manager, so the unit and an agent
autostart entry are written and the step says what to do instead.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import stat
import subprocess
import sys
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from s3vault.keys.material import AesKey, RsaKey
from s3vault.keys.store import KeyStore

ROOT = Path(__file__).resolve().parent.parent
PLAYBOOK_DIR = ROOT / "installer" / "ansible"
BIN = Path(sys.executable).parent
KEY_NAME = "fleet"
RUN_TIMEOUT = 300
# The real pip cache, read before conftest isolates HOME and XDG_CACHE_HOME (this module
# is imported at collection): the role's pip then reuses what it holds.
PIP_CACHE_DIR = os.environ.get("PIP_CACHE_DIR") or str(
    Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "pip"
)
_RECAP = re.compile(
    r"^localhost\s*:\s*ok=(?P<ok>\d+)\s+changed=(?P<changed>\d+)\s+unreachable=(?P<unreachable>\d+)"
    r"\s+failed=(?P<failed>\d+)",
    re.MULTILINE,
)


@dataclass
class Deployment:
    """The deployed machine (its dirs, the key, the runs so far), and how to run the
    playbook on it again."""

    base: Path
    home: Path
    env: dict[str, str]
    venv: Path
    config_path: Path
    log_path: Path
    keyring_service: str
    key: bytes
    bus: str
    vars_file: Path
    runs: dict[str, subprocess.CompletedProcess[str]] = field(default_factory=dict)

    def vaulted_vars(self, name: str, variables: dict[str, object]) -> Path:
        """An extra-vars file (mode 0600), encrypted with ansible-vault as a user keeps it."""
        path = self.base / name
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            yaml.safe_dump(variables, f)
        subprocess.run(
            [
                str(BIN / "ansible-vault"),
                "encrypt",
                "--vault-password-file",
                self.password_file,
                str(path),
            ],
            env=self.env,
            cwd=self.base,
            check=True,
            capture_output=True,
            timeout=RUN_TIMEOUT,
        )
        return path

    @property
    def password_file(self) -> str:
        return str(self.base / "vault-password")

    def playbook(self, *extra: str) -> subprocess.CompletedProcess[str]:
        """ansible-playbook on the example playbook, with the vaulted variables (and
        ``extra`` options: a later ``-e @FILE`` overrides them); fails the test unless
        it succeeds."""
        command: Sequence[str] = [
            str(BIN / "ansible-playbook"),
            *("-i", "localhost,", "-c", "local", "-v"),
            *("-e", f"@{self.vars_file}", "--vault-password-file", self.password_file),
            *extra,
            str(PLAYBOOK_DIR / "playbook.yml"),
        ]
        run = subprocess.run(
            command,
            env=self.env,
            cwd=self.base,
            capture_output=True,
            text=True,
            stdin=subprocess.DEVNULL,
            timeout=RUN_TIMEOUT,
            check=False,
        )
        if run.returncode != 0:
            pytest.fail(
                f"ansible-playbook {' '.join(extra)} exited {run.returncode}:\n"
                f"{run.stdout[-6000:]}\n{run.stderr[-3000:]}",
                pytrace=False,
            )
        return run

    def s3vault(self, *args: str) -> subprocess.CompletedProcess[str]:
        """The installed s3vault (not this worktree's), as the deployed user runs it."""
        env = dict(self.env)
        env["DBUS_SESSION_BUS_ADDRESS"] = self.bus
        return subprocess.run(
            [str(self.venv / "bin" / "s3vault"), *args],
            env=env,
            cwd=self.home,
            capture_output=True,
            text=True,
            stdin=subprocess.DEVNULL,
            timeout=60,
            check=False,
        )


def recap(run: subprocess.CompletedProcess[str]) -> dict[str, int]:
    """The counts of the PLAY RECAP line of localhost."""
    found = _RECAP.search(run.stdout)
    assert found, f"no PLAY RECAP in:\n{run.stdout[-3000:]}"
    return {name: int(value) for name, value in found.groupdict().items()}


def build_wheel(out: Path) -> Path:
    """A wheel of this worktree, built from a copy (pip builds in the source tree)."""
    src = out / "src"
    src.mkdir(parents=True)
    for name in ("pyproject.toml", "README.md", *(p.name for p in ROOT.glob("LICEN[CS]E*"))):
        shutil.copy2(ROOT / name, src / name)
    shutil.copytree(ROOT / "s3vault", src / "s3vault", ignore=shutil.ignore_patterns("__pycache__"))
    # With build isolation: the build backend pyproject.toml asks for (setuptools>=77),
    # not the older one in .venv.
    subprocess.run(
        [str(BIN / "pip"), "wheel", "--no-deps", "-q", "-w", str(out / "dist"), str(src)],
        env={**os.environ, "PIP_CACHE_DIR": PIP_CACHE_DIR},
        check=True,
        capture_output=True,
        timeout=RUN_TIMEOUT,
    )
    (wheel,) = (out / "dist").glob("s3vault-*.whl")
    return wheel


@pytest.fixture(scope="module")
def deployment(
    tmp_path_factory: pytest.TempPathFactory, session_env: dict[str, str]
) -> Iterator[Deployment]:
    base = tmp_path_factory.mktemp("ansible")
    home = base / "home"
    env = {
        name: value
        for name, value in os.environ.items()
        # The keyring's bus reaches s3vault through the role's variable, and its service
        # name through the rendered config: nothing of the developer's or the session's.
        if not name.startswith(("S3VAULT_", "ANSIBLE_")) and name != "DBUS_SESSION_BUS_ADDRESS"
    }
    env |= {
        "HOME": str(home),
        "XDG_CONFIG_HOME": str(home / ".config"),
        "XDG_DATA_HOME": str(home / ".local" / "share"),
        "XDG_STATE_HOME": str(home / ".local" / "state"),
        "XDG_CACHE_HOME": str(home / ".cache"),
        "PIP_CACHE_DIR": PIP_CACHE_DIR,
        "ANSIBLE_CONFIG": str(PLAYBOOK_DIR / "ansible.cfg"),
        "ANSIBLE_PYTHON_INTERPRETER": sys.executable,
        "ANSIBLE_HOME": str(base / "ansible-home"),
        "ANSIBLE_LOCAL_TEMP": str(base / "ansible-local-tmp"),
        "ANSIBLE_REMOTE_TEMP": str(base / "ansible-remote-tmp"),
        "ANSIBLE_LOG_PATH": str(base / "ansible.log"),
        "ANSIBLE_NOCOLOR": "1",
    }
    for sub in (".config", ".local/share", ".local/state", ".cache"):
        (home / sub).mkdir(parents=True, mode=0o700)
    deployment = Deployment(
        base=base,
        home=home,
        env=env,
        venv=home / ".local" / "share" / "s3vault" / "venv",
        config_path=home / ".config" / "s3vault" / "config.yaml",
        log_path=base / "ansible.log",
        keyring_service=f"s3vault-ansible-{uuid.uuid4().hex[:12]}",
        key=os.urandom(32),
        bus=session_env["DBUS_SESSION_BUS_ADDRESS"],
        vars_file=base / "vars.yml",
    )
    password = Path(deployment.password_file)
    password.write_text(base64.b64encode(os.urandom(24)).decode() + "\n")
    password.chmod(0o600)
    wheel = build_wheel(base / "build")
    variables = {
        "s3vault_package": str(wheel),
        "s3vault_package_copy": True,
        # The venv's Python (>= 3.11, like the project's) creates the new virtualenv.
        "s3vault_python": sys.executable,
        "s3vault_config": {
            "s3": {
                "endpoint_url": session_env["AWS_ENDPOINT_URL_S3"],
                "region": "us-east-1",
                "addressing_style": "path",
            },
            "keyring": {"service": deployment.keyring_service},
        },
        "s3vault_dbus_session_bus_address": deployment.bus,
        "s3vault_key_name": KEY_NAME,
        "s3vault_key_type": "aes",
        "s3vault_key_material": base64.b64encode(deployment.key).decode(),
        "s3vault_service_start": False,
    }
    deployment.vaulted_vars(deployment.vars_file.name, variables)
    deployment.runs["first"] = deployment.playbook()
    deployment.runs["second"] = deployment.playbook()
    deployment.runs["check"] = deployment.playbook("--check", "--diff")
    yield deployment


def test_first_run_changes_the_machine_and_a_second_run_changes_nothing(
    deployment: Deployment,
) -> None:
    first, second = recap(deployment.runs["first"]), recap(deployment.runs["second"])
    assert first["changed"] > 0
    assert first["failed"] == first["unreachable"] == 0
    assert second["changed"] == 0, deployment.runs["second"].stdout
    assert second["failed"] == 0


def test_check_mode_on_a_deployed_machine_finds_nothing_to_change(
    deployment: Deployment,
) -> None:
    checked = recap(deployment.runs["check"])
    assert checked["changed"] == 0, deployment.runs["check"].stdout
    assert checked["failed"] == 0


def test_installed_s3vault_runs_from_its_own_virtualenv_and_the_users_path(
    deployment: Deployment,
) -> None:
    helped = deployment.s3vault("--help")
    assert helped.returncode == 0, helped.stderr
    assert "Client-side encrypted S3 storage" in helped.stdout
    # Installed from the wheel into the new virtualenv, not this worktree's editable install.
    where = subprocess.run(
        [str(deployment.venv / "bin" / "python"), "-c", "import s3vault; print(s3vault.__file__)"],
        capture_output=True,
        text=True,
        check=True,
        cwd=deployment.home,
    ).stdout.strip()
    assert Path(where).is_relative_to(deployment.venv)
    link = deployment.home / ".local" / "bin" / "s3vault"
    assert link.is_symlink()
    assert link.resolve() == (deployment.venv / "bin" / "s3vault").resolve()


def test_config_is_rendered_private_managed_by_ansible_and_valid(deployment: Deployment) -> None:
    path = deployment.config_path
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    doc = yaml.safe_load(path.read_text())
    assert doc["managed_by"] == "ansible"
    assert doc["version"] == 1
    assert doc["keyring"] == {"service": deployment.keyring_service}
    assert doc["s3"]["addressing_style"] == "path"
    # The installed s3vault finds it where it looks by default and accepts it.
    validated = deployment.s3vault("config", "validate", "--json")
    assert validated.returncode == 0, validated.stderr
    assert json.loads(validated.stdout) == {"valid": True, "path": str(path)}


def test_master_key_is_in_the_keyring_under_its_name_and_current(deployment: Deployment) -> None:
    listed = deployment.s3vault("key", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    (entry,) = [e for e in json.loads(listed.stdout) if e["name"] == KEY_NAME]
    expected = AesKey(KEY_NAME, deployment.key)
    assert (entry["name"], entry["type"], entry["bits"]) == (KEY_NAME, "aes", 256)
    assert entry["fingerprint"] == expected.fingerprint
    assert entry["current"] is True
    # The material itself, read back from the keyring (this process is on its bus).
    stored = KeyStore(deployment.keyring_service).get(KEY_NAME)
    assert isinstance(stored, AesKey)
    assert stored.secret == deployment.key


def test_key_material_appears_in_no_output_log_or_file(deployment: Deployment) -> None:
    key = deployment.key
    forms = {
        "raw": key,
        "base64": base64.b64encode(key),
        "urlsafe base64": base64.urlsafe_b64encode(key),
        "base64 without padding": base64.b64encode(key).rstrip(b"="),
        "hex": key.hex().encode(),
        "HEX": key.hex().upper().encode(),
    }
    log = deployment.log_path.read_bytes()
    # The log and the output did record the import task, with its result hidden.
    assert f"Import the master key {KEY_NAME}".encode() in log
    first = deployment.runs["first"].stdout
    assert "the output has been hidden due to the fact that 'no_log: true'" in first
    outputs = {
        f"{name} stdout/stderr": (run.stdout + run.stderr).encode()
        for name, run in deployment.runs.items()
    }
    files = {
        str(path): path.read_bytes()
        for path in deployment.base.rglob("*")
        if path.is_file() and not path.is_symlink()
    }
    assert str(deployment.log_path) in files
    assert str(deployment.config_path) in files
    leaks = [
        f"{form} in {where}"
        for where, data in {**outputs, **files}.items()
        for form, needle in forms.items()
        if needle in data
    ]
    assert leaks == []


def test_agent_unit_is_installed_and_runs_the_virtualenvs_s3vault(
    deployment: Deployment,
) -> None:
    unit = deployment.home / ".config" / "systemd" / "user" / "s3vault-agent.service"
    text = unit.read_text(encoding="utf-8")
    exec_start = next(line for line in text.splitlines() if line.startswith("ExecStart="))
    assert str(deployment.venv / "bin") in exec_start
    assert "agent --foreground" in exec_start
    # No systemd user manager here: the agent starts from the desktop's autostart instead.
    autostart = deployment.home / ".config" / "autostart" / "s3vault-agent.desktop"
    assert str(deployment.venv / "bin") in autostart.read_text(encoding="utf-8")


def test_ansible_keeps_its_state_in_the_dirs_it_was_given(deployment: Deployment) -> None:
    assert not (deployment.home / ".ansible").exists()
    assert deployment.log_path.stat().st_size > 0


def test_rsa_key_and_kms_key_import_once_then_stay_unchanged(
    deployment: Deployment, kms_key_id: str
) -> None:
    """The other two key types, through the key step alone (its tag), on the deployed
    machine: each is imported by a first run and left alone by the second."""
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    cases = {
        "rsa": {"s3vault_key_name": "fleet-rsa", "s3vault_key_material": pem.decode()},
        "kms": {"s3vault_key_name": "fleet-kms", "s3vault_key_kms_id": kms_key_id},
    }
    runs = []
    for kind, variables in cases.items():
        override = deployment.vaulted_vars(
            f"vars-{kind}.yml",
            {**variables, "s3vault_key_type": kind, "s3vault_key_current": False},
        )
        first = deployment.playbook("--tags", "s3vault_key", "-e", f"@{override}")
        second = deployment.playbook("--tags", "s3vault_key", "-e", f"@{override}")
        assert recap(first)["changed"] == 1, first.stdout
        assert recap(second)["changed"] == 0, second.stdout
        runs += [first, second]
    listed = deployment.s3vault("key", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    keys = {entry["name"]: entry for entry in json.loads(listed.stdout)}
    assert keys["fleet-rsa"]["fingerprint"] == RsaKey("fleet-rsa", pem).fingerprint
    assert keys["fleet-kms"]["key_id"] == kms_key_id
    # The AES key stays current (s3vault_key_current: false for these two).
    assert [name for name, entry in keys.items() if entry["current"]] == [KEY_NAME]
    # The private key's body (after its first, common lines) is in no output or log.
    secret_lines = pem.decode().splitlines()[3:-2]
    seen = "".join(run.stdout + run.stderr for run in runs) + deployment.log_path.read_text()
    assert [line for line in secret_lines if line in seen] == []


def test_file_keystore_takes_the_key_once_and_keeps_passphrase_and_key_private(
    deployment: Deployment,
) -> None:
    """A server without a Secret Service: the config and key steps (their tags) with
    `s3vault_keystore_type: file` put the key in the passphrase-encrypted file the config
    names, then change nothing; the passphrase is only in its 0600 file. The machine's
    keyring config is put back afterwards (the other tests share the deployment)."""
    key = os.urandom(32)
    passphrase = uuid.uuid4().hex
    override = deployment.vaulted_vars(
        "vars-file-keystore.yml",
        {
            "s3vault_keystore_type": "file",
            "s3vault_keystore_passphrase": passphrase,
            "s3vault_key_name": "fleet-file",
            "s3vault_key_material": base64.b64encode(key).decode(),
            "s3vault_key_current": False,
        },
    )
    tags = ("--tags", "s3vault_config,s3vault_key")
    try:
        first = deployment.playbook(*tags, "-e", f"@{override}")
        second = deployment.playbook(*tags, "-e", f"@{override}")
        assert recap(first)["changed"] >= 3, first.stdout  # passphrase, config, key
        assert recap(second)["changed"] == 0, second.stdout

        keystore = deployment.home / ".local" / "share" / "s3vault" / "keystore"
        secret = deployment.config_path.parent / "keystore.passphrase"
        for path in (keystore, secret):
            assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
        listed = deployment.s3vault("key", "list", "--json")
        assert listed.returncode == 0, listed.stderr
        assert [entry["name"] for entry in json.loads(listed.stdout)] == ["fleet-file"]
        seen = "".join(run.stdout + run.stderr for run in (first, second))
        seen += deployment.log_path.read_text()
        for needle in (passphrase, base64.b64encode(key).decode(), key.hex()):
            assert needle not in seen
        assert key not in keystore.read_bytes()
        assert base64.b64encode(key) not in keystore.read_bytes()
    finally:
        deployment.playbook("--tags", "s3vault_config")  # back to the keyring
