"""A protected Redis: password, a least-privilege ACL user confined to its namespace, and TLS."""

from __future__ import annotations

import datetime
import ipaddress
import os
import re
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import redis
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from curriculum_redis import (
    BucketedTaskGenerator,
    BufferConfig,
    Curriculum,
    CurriculumConfig,
    LearningProgressConfig,
    SamplerConfig,
    StoreError,
    StoreUnavailableError,
    admin,
    cli,
)
from curriculum_redis.demo.binaries import free_port
from curriculum_redis.errors import ScriptsNotLoadedError, TLSTrustError

GENERATOR = BucketedTaskGenerator({}, {"level": [0, 1, 2, 3]}, label="grid")
DEBIAN_REDIS = "/usr/bin/redis-server"
BINARIES = [pytest.param(None, id="default-binary")]
if os.access(DEBIAN_REDIS, os.X_OK):
    BINARIES.append(pytest.param(DEBIAN_REDIS, id="system-binary"))

WORKER_ACL = (
    "on >pw resetkeys ~{cr:ns1}:* resetchannels -@all "
    "+ping +info +evalsha "
    "+get +getrange +strlen +setrange +del +exists +pexpire "
    "+hget +hmget +hkeys +hset +hsetnx +hgetall +hincrby +xadd +xrange "
    "+multi +exec"
)
"""The least a worker needs for namespace ``ns1`` (the README quotes it). Scripts run by EVALSHA only: an
admin loads them (``admin.load_scripts``, ``curriculum-redis load-scripts``), so the worker can run no Lua of
its own (no EVAL, no SCRIPT LOAD). The commands the scripts run are checked against the ACL too; reads
outside scripts are HGET/HGETALL/HKEYS; touch() adds HSET + PEXPIRE; get_state() is a MULTI/EXEC of
HGETALLs and an XRANGE; attaching reads INFO memory (the eviction policy check). PING is only redis-py's health
check on a connection idle for 30 s."""


def make_config(url: str, namespace: str, **extra: Any) -> CurriculumConfig:
    return CurriculumConfig(
        task_generator=GENERATOR,
        algorithm=LearningProgressConfig(
            num_active_tasks=8, min_presentations_for_eviction=3, eviction_threshold_percentile=0.5
        ),
        redis_url=url,
        namespace=namespace,
        buffer=BufferConfig(batch_size=8),
        sampler=SamplerConfig(refresh_every_draws=20),
        **extra,
    )


def run_episodes(curriculum: Curriculum, n: int) -> None:
    for i in range(n):
        task = curriculum.get_task()
        if i % 50 == 49:
            curriculum.report_task_failure(task.task_id)
        else:
            curriculum.update_task_performance(task.task_id, (i % 7) / 7)
    curriculum.flush()


def handled(stats: dict[str, float]) -> float:
    return stats["num_completed"]


# --------------------------------------------------------------------------- password


def test_a_password_in_the_url_opens_a_protected_server(fresh_redis_factory: Any) -> None:
    server = fresh_redis_factory(persistence="none", password="s3cret/with:odd@chars")
    assert "s3cret%2Fwith%3Aodd%40chars@" in server.url  # percent-encoded in the URL
    with Curriculum(make_config(server.url, "pw")) as curriculum:
        run_episodes(curriculum, 100)
        assert handled(curriculum.stats()) == 100


@pytest.mark.parametrize("credentials", ["", ":hunter2-guess@", "bob:hunter2-guess@"])
def test_a_missing_or_wrong_password_fails_without_leaking_it(fresh_redis_factory: Any, credentials: str) -> None:
    server = fresh_redis_factory(persistence="none", password="s3cret")
    curriculum = Curriculum(make_config(f"redis://{credentials}127.0.0.1:{server.port}/0", "pw"))
    with pytest.raises(StoreError, match=r"(?i)auth|password") as caught:
        curriculum.get_task()
    message = str(caught.value)
    assert f"127.0.0.1:{server.port}" in message
    assert "hunter2" not in message and "s3cret" not in message


def test_a_rejected_password_is_reported_as_such_not_as_an_outage(fresh_redis_factory: Any) -> None:
    server = fresh_redis_factory(persistence="none", password="s3cret")
    for url in (f"redis://127.0.0.1:{server.port}/0", f"redis://:guess@127.0.0.1:{server.port}/0"):
        with pytest.raises(StoreError) as caught:
            Curriculum(make_config(url, "pw")).get_task()
        assert not isinstance(caught.value, StoreUnavailableError)
        assert "password" in str(caught.value)


# --------------------------------------------------------------------------- ACL


@pytest.mark.parametrize("binary", BINARIES)
def test_a_least_privilege_acl_user_runs_its_namespace_and_cannot_read_another(
    fresh_redis_factory: Any, binary: str | None
) -> None:
    server = fresh_redis_factory(persistence="none", binary=binary)
    root = redis.Redis.from_url(server.url)
    with Curriculum(make_config(server.url, "ns2")) as other:  # someone else's namespace, made by the admin
        run_episodes(other, 20)
    assert root.execute_command("ACL", "SETUSER", "worker", *WORKER_ACL.split())
    root.script_flush()
    assert set(admin.load_scripts(root)) >= {"attach", "create_tasks", "record_outcomes:learning_progress"}
    root.acl_log_reset()
    url = f"redis://worker:pw@127.0.0.1:{server.port}/0"

    with Curriculum(make_config(url, "ns1", ttl_s=600.0)) as curriculum:
        run_episodes(curriculum, 300)
        root.script_flush()  # a restart or failover: the worker may not load the scripts back
        task_id = curriculum.get_task().task_id  # from the local view: no refresh is due
        for _ in range(5):
            curriculum.update_task_performance(task_id, 0.5)
        with pytest.raises(ScriptsNotLoadedError, match="load-scripts"):
            curriculum.store.snapshot()  # a read: redis-py's Script, whose SCRIPT LOAD is refused
        with pytest.raises(ScriptsNotLoadedError, match="load-scripts"):
            curriculum.flush()  # a write, on its own connection: at once, not after retries; the batch stays
        assert cli.main(["--redis-url", server.url, "load-scripts"]) == 0  # the admin step
        run_episodes(curriculum, 300)
        stats = curriculum.stats()
        assert handled(stats) == 605 and stats["num_evicted"] > 0 and stats["num_failures"] > 0
        assert curriculum.label_table()
        assert curriculum.get_state().counters["num_completed"] == stats["num_completed"]
    # Nothing was refused but the worker's one SCRIPT LOAD after the flush, and redis-py's optional CLIENT
    # SETINFO on connect (not needed, ignored by it). Redis names such entries "client", Valkey "client|setinfo".
    denied = {(entry["object"].split("|")[0], entry["reason"]) for entry in root.acl_log()}
    assert ("script", "command") in denied and denied <= {("client", "command"), ("script", "command")}, denied

    worker = redis.Redis.from_url(url)
    with pytest.raises(redis.exceptions.NoPermissionError):  # no Lua of its own: it cannot freeze the server
        worker.eval("while true do end", 0)
    with pytest.raises(redis.exceptions.NoPermissionError):
        worker.script_load("while true do end")
    with pytest.raises(redis.exceptions.ResponseError):  # NOPERM on Redis 7, an unknown command on 6.2
        worker.execute_command("FUNCTION", "LOAD", "#!lua name=x\nredis.register_function('x', function() end)")
    with pytest.raises(redis.exceptions.NoPermissionError):
        worker.hgetall("{cr:ns2}:meta")
    with pytest.raises(redis.exceptions.NoPermissionError):
        worker.set("user:1", "x")
    with pytest.raises(redis.exceptions.NoPermissionError):
        worker.flushall()
    worker.close()
    with pytest.raises(StoreError, match=r"(?i)permission"):
        Curriculum(make_config(url, "ns2")).get_task()
    assert int(root.hget("{cr:ns2}:counters", "num_completed")) == 20  # untouched
    root.close()


# --------------------------------------------------------------------------- TLS


def write_pem(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def make_certificates(directory: Path) -> dict[str, Path]:
    """A CA, a server certificate for 127.0.0.1/localhost and a client certificate, all signed by the CA."""
    now = datetime.datetime.now(datetime.UTC)

    def key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
        return key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )

    def name(common_name: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder()
        .subject_name(name("curriculum-redis test CA"))
        .issuer_name(name("curriculum-redis test CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    paths = {"ca": write_pem(directory / "ca.pem", ca.public_bytes(serialization.Encoding.PEM))}
    for role, usage in (
        ("server", ExtendedKeyUsageOID.SERVER_AUTH),
        ("client", ExtendedKeyUsageOID.CLIENT_AUTH),
    ):
        key = ec.generate_private_key(ec.SECP256R1())
        cert = (
            x509.CertificateBuilder()
            .subject_name(name("localhost" if role == "server" else "worker"))
            .issuer_name(ca.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(
                x509.SubjectAlternativeName(
                    [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
                ),
                critical=False,
            )
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
            .sign(ca_key, hashes.SHA256())
        )
        paths[role] = write_pem(directory / f"{role}.pem", cert.public_bytes(serialization.Encoding.PEM))
        paths[f"{role}-key"] = write_pem(directory / f"{role}.key", key_pem(key))
    return paths


def tls_server(factory: Any, certs: dict[str, Path], *, client_certs: bool) -> int:
    """A TLS-only server (plain port disabled); returns its TLS port. EmbeddedRedis waits for the "ready to
    accept connections" log line, since its PING probe can't reach a server whose plain port is 0."""
    port = free_port()
    factory(
        persistence="none",
        binary=DEBIAN_REDIS,
        extra_args=[
            "--port", "0",
            "--tls-port", str(port),
            "--tls-cert-file", str(certs["server"]),
            "--tls-key-file", str(certs["server-key"]),
            "--tls-ca-cert-file", str(certs["ca"]),
            "--tls-auth-clients", "yes" if client_certs else "no",
        ],
    )  # fmt: skip
    return port


needs_tls_binary = pytest.mark.skipif(
    not os.access(DEBIAN_REDIS, os.X_OK), reason=f"no TLS-capable redis-server at {DEBIAN_REDIS}"
)


@needs_tls_binary
def test_a_curriculum_runs_over_tls_with_the_ca_given_in_the_url(fresh_redis_factory: Any, tmp_path: Path) -> None:
    certs = make_certificates(tmp_path)
    port = tls_server(fresh_redis_factory, certs, client_certs=False)
    url = f"rediss://127.0.0.1:{port}/0?ssl_ca_certs={quote(str(certs['ca']))}"
    with Curriculum(make_config(url, "tls")) as curriculum:
        run_episodes(curriculum, 200)
        assert handled(curriculum.stats()) == 200
    with Curriculum(make_config(url, "tls")) as reader:  # another client sees the same namespace
        assert handled(reader.stats()) == 200

    with pytest.raises(TLSTrustError, match=r"(?i)certificate verify failed"):  # to fix, not to wait out
        Curriculum(make_config(f"rediss://127.0.0.1:{port}/0", "tls")).get_task()  # CA not trusted
    with pytest.raises(StoreUnavailableError, match=re.escape(f"127.0.0.1:{port}")):
        Curriculum(make_config(f"redis://127.0.0.1:{port}/0", "tls")).get_task()  # plain text to a TLS port


@needs_tls_binary
def test_a_curriculum_presents_a_client_certificate_when_the_server_asks(
    fresh_redis_factory: Any, tmp_path: Path
) -> None:
    certs = make_certificates(tmp_path)
    port = tls_server(fresh_redis_factory, certs, client_certs=True)
    query = "&".join(
        f"{arg}={quote(str(certs[name]))}"
        for arg, name in (("ssl_ca_certs", "ca"), ("ssl_certfile", "client"), ("ssl_keyfile", "client-key"))
    )
    with Curriculum(make_config(f"rediss://127.0.0.1:{port}/0?{query}", "mtls")) as curriculum:
        run_episodes(curriculum, 100)
        assert handled(curriculum.stats()) == 100
    no_client_cert = f"rediss://127.0.0.1:{port}/0?ssl_ca_certs={quote(str(certs['ca']))}"
    with pytest.raises(StoreUnavailableError):
        Curriculum(make_config(no_client_cert, "mtls")).get_task()
