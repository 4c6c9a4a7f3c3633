"""Redis URLs: parse, redact, check the scheme.

curriculum_redis's own options travel in a URL's query (so they fit in ``CurriculumConfig.redis_url``)
and are removed before redis-py sees the URL. This module does not import redis, so the config can check
a URL without loading a client.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from curriculum_redis.errors import ConfigError

URL_SCHEMES = ("redis://", "rediss://", "unix://")
TRUE_VALUES = ("1", "true", "yes", "on")
FALSE_VALUES = ("0", "false", "no", "off", "")


def redact(url: str) -> str:
    """The URL without its password, for error messages and logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    return urlunsplit((parts.scheme, f"{user}:***@{host}{port}", parts.path, parts.query, parts.fragment))


def check_url(url: str, what: str = "redis URL") -> str:
    """``url`` if its scheme is one of :data:`URL_SCHEMES`; a :class:`ConfigError` naming ``what`` (the
    option the URL came from) otherwise. The one scheme check: the config, the CLI and the stores call it."""
    if not url.startswith(URL_SCHEMES):
        raise ConfigError(f"{what} must start with redis://, rediss:// or unix://, got {redact(url)!r}")
    return url


@dataclass(frozen=True)
class StoreURL:
    """A store URL split into what redis-py gets and curriculum_redis's own query options.

    Options (removed from the URL before redis-py sees it, so they fit in ``CurriculumConfig.redis_url``):

    - ``cluster=true``: a Redis Cluster; the URL names any one node, the others are discovered.
    - ``read_from_replicas=true``: on a cluster, read the score snapshot and the statistics from a replica
      of the namespace's slot.
    - ``replica=host:port`` (or a percent-encoded URL): on a standalone primary, read them from this
      replica; ``host:port`` keeps the primary URL's scheme, credentials and db.
    """

    url: str
    cluster: bool = False
    read_from_replicas: bool = False
    replica_url: str | None = None


def _flag(name: str, value: str) -> bool:
    if value.lower() in TRUE_VALUES:
        return True
    if value.lower() in FALSE_VALUES:
        return False
    raise ConfigError(f"URL option {name}={value!r} must be true or false")


def parse_store_url(url: str) -> StoreURL:
    """Split off curriculum_redis's query options (see :class:`StoreURL`); checks the scheme first."""
    check_url(url)
    parts = urlsplit(url)
    kept: list[tuple[str, str]] = []
    cluster = read_from_replicas = False
    replica: str | None = None
    for name, value in parse_qsl(parts.query, keep_blank_values=True):
        if name == "cluster":
            cluster = _flag(name, value)
        elif name == "read_from_replicas":
            read_from_replicas = _flag(name, value)
        elif name == "replica":
            if replica is not None:
                raise ConfigError("give at most one replica= URL option")
            replica = value
        else:
            kept.append((name, value))
    if cluster is False and read_from_replicas is False and replica is None:
        clean = url  # untouched (urlunsplit would turn unix:///path into unix:/path)
    else:
        query = f"?{urlencode(kept)}" if kept else ""
        clean = f"{parts.scheme}://{parts.netloc}{parts.path}{query}"
    replica_url = None
    if replica is not None:
        if "://" in replica:
            replica_url = replica
        else:
            if parts.scheme == "unix" or ":" not in replica:
                raise ConfigError(f"replica={replica!r} must be host:port (or a URL), with a redis:// primary URL")
            userinfo = parts.netloc.rpartition("@")[0]
            netloc = f"{userinfo}@{replica}" if userinfo else replica
            replica_url = urlunsplit((parts.scheme, netloc, parts.path, urlencode(kept), parts.fragment))
        read_from_replicas = True
    return StoreURL(clean, cluster, read_from_replicas, replica_url)
