"""Exception classes: one per kind of mistake, so callers can catch exactly what they can handle."""

from __future__ import annotations


class CurriculumError(Exception):
    """Base class of every error this library raises on purpose."""


class ConfigError(CurriculumError, ValueError):
    """A configuration value is invalid or inconsistent."""


class InvalidScoreError(CurriculumError, ValueError):
    """A reported score is not a finite number inside the configured score range."""


class HyperparameterMismatchError(ConfigError):
    """Stored hyperparameters differ from the given ones in fields that change their meaning (a
    :class:`ConfigError`: the given config does not fit the namespace)."""

    def __init__(self, differences: dict[str, tuple[object, object]], where: str) -> None:
        self.differences = differences
        lines = [f"  {name}: stored={stored!r} given={given!r}" for name, (stored, given) in differences.items()]
        hint = (
            "A namespace keeps its algorithm: use another namespace."
            if "algorithm" in differences
            else "Pass on_mismatch='adopt' to use the stored hyperparameters, or use another namespace."
        )
        super().__init__(
            f"{where} holds hyperparameters that differ from the given config in fields that change "
            "their meaning:\n" + "\n".join(lines) + "\n" + hint
        )


class StoreError(CurriculumError):
    """The store refused an operation or holds data this version cannot read."""


class CredentialsError(StoreError):
    """The server refused the user or password: an error to fix, not an outage to wait out."""

    def __init__(self, where: str, reason: object) -> None:
        super().__init__(f"{where} rejected the credentials ({reason}): put the right user and password in the URL")


class NamespaceNotFoundError(StoreError):
    """The namespace holds no task pool on this server (it does not exist, or is a stage namespace)."""

    def __init__(self, namespace: str, where: str, stage: bool = False) -> None:
        self.namespace = namespace
        self.stage = stage
        what = "is a sequential (stage) namespace, not a task pool" if stage else "does not exist"
        super().__init__(f"namespace {namespace!r} {what} on {where}")


class StoreUnavailableError(StoreError):
    """The Redis server cannot be reached."""


class ScriptError(StoreError):
    """A Lua script rejected its input before writing anything."""


class CheckpointError(CurriculumError):
    """A checkpoint or export file is corrupt, truncated, foreign or of another schema version."""


class GeneratorMismatchError(ConfigError):
    """The namespace was created with another task generator: the same task ids would mean other tasks."""

    def __init__(self, namespace: str, stored: str, given: str, generator: object) -> None:
        self.stored = stored
        self.given = given
        super().__init__(
            f"namespace {namespace!r} was created with another task generator (fingerprint {stored}); this "
            f"process's task_generator {generator!r} has fingerprint {given}. Every process of a namespace "
            "must use the same task generator: use another namespace, or drop this one."
        )


class TLSTrustError(StoreError):
    """The server's TLS certificate is not trusted (wrong CA, wrong host name, not TLS): a setting to fix,
    not an outage to wait out."""

    def __init__(self, where: str, reason: object) -> None:
        super().__init__(
            f"{where}: the TLS handshake failed ({reason}): check the CA file (ssl_ca_certs), the host name and "
            "that the server speaks TLS on this port"
        )


class EvictionPolicyError(StoreError):
    """The server may evict the namespace's keys (its ``maxmemory-policy``): a lost key corrupts the curriculum."""


class ScriptsNotLoadedError(StoreError):
    """The server lacks the library's Lua scripts and this user may not load them (an ACL without
    SCRIPT LOAD): an admin must load them, retrying cannot help."""

    def __init__(self, reason: object) -> None:
        super().__init__(
            f"the curriculum's Lua scripts are not loaded on the server and this user may not load them ({reason}): "
            "run `curriculum-redis load-scripts` (or admin.load_scripts(client)) as an admin user after every "
            "restart, failover or SCRIPT FLUSH"
        )
