"""``curriculum-redis``: run the demo, and inspect, snapshot, export or drop namespaces on a Redis server.

A thin layer: every command parses its arguments, calls one library function and prints the result as a
rich table or, with ``--json``, as JSON. Errors are one line on stderr, without a traceback or a password:
exit code 2 for bad arguments, 1 for failures at run time (an unreachable server, a corrupt file), 130 for
Ctrl-C, and 128 + the signal's number for SIGTERM (143) and SIGHUP (129), which stop the demo's server
and workers as Ctrl-C does.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any, get_args
from urllib.parse import urlsplit

import redis
from rich.console import Console

from curriculum_redis import admin, integrity, reader, script_command, tables, watch
from curriculum_redis.config import CurriculumConfig, MismatchPolicy
from curriculum_redis.errors import ConfigError, CredentialsError, CurriculumError, HyperparameterMismatchError
from curriculum_redis.shutdown import EXIT_INTERRUPTED, TerminatedBySignal, stop_on_signals
from curriculum_redis.store.connection import Client, client_from_url
from curriculum_redis.store.url import check_url, parse_store_url, redact

URL_ENV = "CURRICULUM_REDIS_URL"
DEFAULT_NAMESPACE = "default"
EXIT_ERROR = 1
EXIT_USAGE = 2

DEMO_EPISODES = "200,000"
DEMO_PACE = "40"
DEMO_ALGORITHM = "frontier"
"""The demo's defaults, as its help shows them without importing it (a test keeps them equal)."""

Handler = Callable[[argparse.Namespace, Console], int]


class UsageError(Exception):
    """A command line that is well formed but asks for something impossible (exit code 2)."""


# --------------------------------------------------------------------------- commands


def cmd_demo(args: argparse.Namespace, console: Console) -> int:
    from curriculum_redis import demo  # the only command that needs the demo subpackage

    given = {"episodes": args.episodes, "learning_rate": args.learning_rate}
    options = demo.DemoOptions.build(
        **{name: value for name, value in given.items() if value is not None},
        workers=args.workers or os.cpu_count() or 1,
        tasks=args.tasks,
        seed=args.seed,
        namespace=args.namespace or "demo",
        out=args.out,
        redis_url=_checked_url(args.redis_url) if args.redis_url else None,
        replace=args.replace,
        levels=args.levels,
        algorithm=args.algorithm,
        lp_noise_correction=args.lp_noise_correction,
        progress=not args.no_progress,
    )
    report = demo.run_demo(options, console)
    if args.json:
        _print_json(report.model_dump(mode="json", exclude={"series"}))
    return 0


def cmd_inspect(args: argparse.Namespace, console: Console) -> int:
    _require(args, "curriculum")
    namespace = _namespace(args)
    generator = None if args.config is None else CurriculumConfig.from_file(args.config).task_generator
    rows = _with_client(
        args, lambda client: reader.read_tasks(client, namespace, args.sort, args.label, args.limit, generator)
    )
    if args.json:
        _print_json(rows)
        return 0
    title = f"tasks of namespace {_namespace(args)!r}, by {args.sort}"
    fields = reader.task_columns(rows[0]["algorithm"]) if rows else ()
    console.print(tables.inspect_table(rows, fields, title, console.width))
    return 0


def cmd_stats(args: argparse.Namespace, console: Console) -> int:
    _require(args, "curriculum")
    stats = _with_client(args, lambda client: reader.read_stats(client, _namespace(args)))
    if args.json:
        _print_json(stats)
        return 0
    for table in tables.stats_tables(stats, _namespace(args), console.width):
        console.print(table)
    return 0


def cmd_labels(args: argparse.Namespace, console: Console) -> int:
    _require(args, "curriculum")
    table_data = _with_client(args, lambda client: reader.read_labels(client, _namespace(args)))
    if args.json:
        _print_json(table_data)
        return 0
    console.print(tables.label_table_view(table_data, f"labels of namespace {_namespace(args)!r}", console.width))
    return 0


def cmd_stage(args: argparse.Namespace, console: Console) -> int:
    namespace = _namespace(args)
    if args.reset_to is not None and not args.yes:
        raise UsageError(f"resetting namespace {namespace!r} to stage {args.reset_to} needs --yes")
    _require(args, "stage")
    report = _with_client(args, lambda client: reader.stage_state(client, namespace))
    if args.reset_to is not None:
        if not 0 <= args.reset_to < len(report.names):
            last = len(report.names) - 1
            raise UsageError(f"--reset-to {args.reset_to} is not a stage (the namespace has stages 0..{last})")
        _with_client(args, lambda client: admin.reset_stage(client, namespace, args.reset_to))
        report = _with_client(args, lambda client: reader.stage_state(client, namespace))
    if args.json:
        _print_json({"state": report.state, "stats": report.stats})
        return 0
    console.print(
        f"namespace {namespace!r}: stage {report.index} [bold]{report.names[report.index]}[/] of "
        f"{len(report.names)}, version {report.version}"
    )
    console.print(tables.stage_table(report.names, report.rules, report.index, report.stats, console.width))
    return 0


def cmd_namespaces(args: argparse.Namespace, console: Console) -> int:
    infos = _with_client(args, admin.list_namespaces)
    if args.json:
        _print_json([asdict(info) for info in infos])
        return 0
    console.print(tables.namespaces_table(infos, f"namespaces on {redact(_url(args))}", console.width))
    return 0


def cmd_drop(args: argparse.Namespace, console: Console) -> int:
    if not args.yes:
        raise UsageError(f"dropping namespace {args.target!r} deletes all its keys: pass --yes to confirm")
    _require(args, None, args.target)
    deleted = _with_client(args, lambda client: admin.drop_namespace(client, args.target))
    console.print(f"dropped namespace {args.target!r}: {deleted} keys deleted")
    return 0


def cmd_snapshot(args: argparse.Namespace, console: Console) -> int:
    info = _with_client(args, lambda client: admin.snapshot(client, timeout_s=args.timeout))
    if args.json:
        _print_json(asdict(info))
        return 0
    size = f"{info.size_bytes:,} bytes" if info.size_bytes is not None else "size unknown (remote server)"
    console.print(f"RDB snapshot written to {info.path} ({size}) in {info.seconds:.2f} s")
    return 0


def cmd_export(args: argparse.Namespace, console: Console) -> int:
    _require(args, "curriculum")
    info = _with_client(args, lambda client: admin.export_namespace(client, _namespace(args), args.path))
    console.print(
        f"exported namespace {info.namespace!r} to {info.path}: {info.tasks} tasks, {info.labels} labels, "
        f"{info.size_bytes:,} bytes"
    )
    return 0


def cmd_import(args: argparse.Namespace, console: Console) -> int:
    try:
        info = _with_client(
            args,
            lambda client: admin.import_namespace(client, _namespace(args), args.path, args.on_mismatch, args.replace),
        )
    except admin.NamespaceExistsError as exc:
        raise CurriculumError(f"namespace {exc.namespace!r} already exists: pass --replace to overwrite it") from exc
    verb = "replaced" if info.replaced else "created"
    console.print(f"{verb} namespace {info.namespace!r} from {args.path}: {info.tasks} tasks, {info.labels} labels")
    return 0


def cmd_history(args: argparse.Namespace, console: Console) -> int:
    """``watch`` and ``plot``: both read the namespace's history (curriculum_redis.watch does the work)."""
    _require(args, "curriculum")
    return int(_with_client(args, lambda client: watch.command(client, _namespace(args), args, console)))


# --------------------------------------------------------------------------- helpers


def _url(args: argparse.Namespace) -> str:
    url: str | None = args.redis_url
    if not url:
        raise UsageError(f"no Redis server given: pass --redis-url or set ${URL_ENV}")
    return _checked_url(url)


def _checked_url(url: str) -> str:
    """The URL, if redis-py can parse it; a UsageError (exit 2) instead of a traceback otherwise."""
    check_url(url, "--redis-url")
    try:
        parsed = parse_store_url(url)
        options = redis.connection.parse_url(parsed.url)  # type: ignore[no-untyped-call]
        if parsed.replica_url is not None:
            redis.connection.parse_url(parsed.replica_url)  # type: ignore[no-untyped-call]
    except (ValueError, TypeError) as exc:
        raise UsageError(f"--redis-url {_safe_redact(url)!r} is not a valid URL: {exc}") from None
    if url.startswith("unix://") and not options.get("path"):
        raise UsageError(f"--redis-url {_safe_redact(url)!r} names no socket path (unix:///path/to/redis.sock)")
    return url


def _safe_redact(url: str) -> str:
    try:
        return redact(url)
    except ValueError:
        return url.split("@")[-1] if "@" in url else url


def _namespace(args: argparse.Namespace) -> str:
    namespace: str = args.namespace or DEFAULT_NAMESPACE
    return namespace


def _namespace_arg(value: str) -> str:
    if not value:
        raise argparse.ArgumentTypeError("must not be empty (leave --namespace out for the default)")
    return value


def _require(args: argparse.Namespace, kind: str | None, namespace: str | None = None) -> None:
    """Refuse (exit 1) a namespace that does not exist, or does not hold ``kind``, with the command to use."""
    name = namespace or _namespace(args)
    found = _with_client(args, lambda client: admin.namespace_kinds(client, name))
    if not found:
        raise CurriculumError(
            f"namespace {name!r} does not exist on {redact(_url(args))}: "
            "run `curriculum-redis namespaces` to list the namespaces there"
        )
    if kind is not None and kind not in found:
        what, command = ("not a stage curriculum", "stats") if kind == "stage" else ("a stage curriculum", "stage")
        raise CurriculumError(
            f"namespace {name!r} is {what}: see it with `curriculum-redis --namespace {name} {command}`"
        )


def _with_client(args: argparse.Namespace, action: Callable[[Client], Any]) -> Any:
    client = client_from_url(_url(args))
    try:
        return action(client)
    finally:
        client.close()


def _version() -> str:
    try:
        return importlib.metadata.version("curriculum_redis")
    except importlib.metadata.PackageNotFoundError:
        return "unknown (not installed)"


def _print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")


def _one_line(message: str, url: str | None) -> str:
    """The message on one line, with the URL's password (if any) masked."""
    text = " ".join(part.strip() for part in message.splitlines() if part.strip())
    if url:
        try:
            password = urlsplit(url).password
        except ValueError:
            password = None
        text = text.replace(url, _safe_redact(url))
        if password:
            text = text.replace(password, "***")
    return text


# --------------------------------------------------------------------------- parser


def _positive_number(value: str, kind: Callable[[str], float], what: str) -> float:
    try:
        number = kind(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {what}, got {value!r}") from None
    if not number > 0:
        raise argparse.ArgumentTypeError(f"expected {what}, got {value}")
    return number


def _positive(value: str) -> int:
    return int(_positive_number(value, int, "a positive integer"))


def _positive_float(value: str) -> float:
    return _positive_number(value, float, "a positive number")


def _connection_options() -> argparse.ArgumentParser:
    """Options accepted before or after the command; SUPPRESS keeps a command from resetting them."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--redis-url",
        default=argparse.SUPPRESS,
        help=f"redis://[user:password@]host:port/db, rediss:// or unix:// (default: ${URL_ENV})",
    )
    common.add_argument("--namespace", type=_namespace_arg, default=argparse.SUPPRESS, help="the curriculum namespace")
    return common


def build_parser() -> argparse.ArgumentParser:
    common = _connection_options()
    parser = argparse.ArgumentParser(
        prog="curriculum-redis",
        description="A learning-progress curriculum whose shared state lives in Redis.",
    )
    parser.add_argument(
        "--redis-url",
        default=os.environ.get(URL_ENV),
        help=f"redis://[user:password@]host:port/db, rediss:// or unix:// (default: ${URL_ENV})",
    )
    parser.add_argument(
        "--namespace",
        type=_namespace_arg,
        default=None,
        help=f"the curriculum namespace (default: {DEFAULT_NAMESPACE}; demo: demo)",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name: str, handler: Handler, help_text: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, parents=[common], help=help_text, description=help_text)
        sub.set_defaults(handler=handler)
        return sub

    sub = add("demo", cmd_demo, "Train a simulated student with worker processes through a Redis curriculum.")
    sub.add_argument("--episodes", type=_positive, default=None, help=f"total episodes (default: {DEMO_EPISODES})")
    sub.add_argument("--workers", type=_positive, default=None, help="worker processes (default: number of CPUs)")
    sub.add_argument("--tasks", type=_positive, default=64, help="active tasks, num_active_tasks (%(default)s)")
    sub.add_argument("--seed", type=int, default=0, help="random seed (%(default)s)")
    sub.add_argument("--out", type=Path, default=Path("demo-output"), help="output directory (%(default)s)")
    sub.add_argument("--levels", type=_positive, default=6, help="learnable levels of the student (%(default)s)")
    sub.add_argument("--learning-rate", type=_positive_float, default=None,
                     help=f"the student's learning rate (default: {DEMO_PACE} / episodes)")  # fmt: skip
    sub.add_argument("--algorithm", default=DEMO_ALGORITHM, help="the curriculum algorithm (default: %(default)s)")
    sub.add_argument("--lp-noise-correction", type=float, default=None,
                     help="with --algorithm learning_progress: z of the noise-corrected LP (default: 0)")  # fmt: skip
    sub.add_argument("--replace", action="store_true", help="drop the namespace first if it exists on --redis-url")
    sub.add_argument("--no-progress", action="store_true", help="no live progress bar")
    sub.add_argument("--json", action="store_true", help="also print the report as JSON")

    sub = add("inspect", cmd_inspect, "List the active tasks of a namespace with their stored fields.")
    sub.add_argument("--sort", choices=reader.sort_keys(), default="probability", help="%(choices)s")
    sub.add_argument("--label", default=None, metavar="SUBSTRING", help="only tasks whose label contains this")
    sub.add_argument("--limit", type=_positive, default=None, help="show at most N tasks")
    sub.add_argument("--json", action="store_true", help="print JSON instead of a table")
    sub.add_argument("--config", default=None, metavar="FILE",
                     help="the run's config file: its task generator places tasks (coordinates), so the "
                     "probabilities include nearness as the workers' do")  # fmt: skip

    sub = add("stats", cmd_stats, "Show a namespace's statistics (counters, LP, per-label figures).")
    sub.add_argument("--json", action="store_true", help="print JSON instead of a table")

    sub = add("labels", cmd_labels, "Show a namespace's per-label table.")
    sub.add_argument("--json", action="store_true", help="print JSON instead of a table")

    sub = add("stage", cmd_stage, "Show a namespace's stage curriculum (current stage, per-stage counts).")
    sub.add_argument("--reset-to", type=int, default=None, metavar="INDEX", help="move every env to this stage")
    sub.add_argument("--yes", action="store_true", help="confirm --reset-to")
    sub.add_argument("--json", action="store_true", help="print JSON instead of a table")

    sub = add("watch", cmd_history, "A live view of a namespace: counters, episodes/s, per-label share and success.")
    sub.add_argument("--once", action="store_true", help="print one frame and exit (for pipes and scripts)")
    sub.add_argument("--every", type=_positive_float, default=1.0, help="seconds between frames (%(default)s)")
    sub = add("plot", cmd_history, "Draw a namespace's history (share, success per label, churn) to a PNG.")
    sub.add_argument("--out", type=Path, default=Path("curriculum.png"), help="the PNG to write (%(default)s)")

    sub = add("namespaces", cmd_namespaces, "List the namespaces on the server.")
    sub.add_argument("--json", action="store_true", help="print JSON instead of a table")

    sub = add("drop", cmd_drop, "Delete every key of one namespace.")
    sub.add_argument("target", metavar="NAMESPACE", help="the namespace to delete")
    sub.add_argument("--yes", action="store_true", help="confirm the deletion")
    integrity.add_check_command(add)
    script_command.add_load_scripts_command(add)
    sub = add("snapshot", cmd_snapshot, "Write an RDB snapshot (BGSAVE) and wait until it is on disk.")
    sub.add_argument("--timeout", type=_positive_float, default=60.0, help="seconds to wait (%(default)s)")
    sub.add_argument("--json", action="store_true", help="print JSON instead of a sentence")

    sub = add("export", cmd_export, "Export one namespace to a portable file (checksummed msgpack).")
    sub.add_argument("path", type=Path, help="the file to write")

    sub = add("import", cmd_import, "Import a file written by export into a namespace.")
    sub.add_argument("path", type=Path, help="the file to read")
    sub.add_argument("--replace", action="store_true", help="overwrite the namespace if it exists")
    sub.add_argument(
        "--on-mismatch",
        choices=get_args(MismatchPolicy),
        default="error",
        help="when the namespace holds other hyperparameters (%(default)s)",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    console = tables.make_console()
    handler: Handler = args.handler
    url: str | None = args.redis_url
    try:
        with stop_on_signals():
            return handler(args, console)
    except TerminatedBySignal as exc:
        print(f"stopped: {exc}", file=sys.stderr)
        return exc.exit_code
    except (UsageError, ConfigError) as exc:
        print(f"error: {_one_line(str(exc), url)}", file=sys.stderr)
        # A namespace refusing the given hyperparameters is a refusal, not a usage error.
        return EXIT_ERROR if isinstance(exc, HyperparameterMismatchError) else EXIT_USAGE
    except redis.exceptions.AuthenticationError as exc:  # the library's wording (RedisStore._call)
        where = _safe_redact(url) if url else "the Redis server"
        print(f"error: {_one_line(str(CredentialsError(where, exc)), url)}", file=sys.stderr)
        return EXIT_ERROR
    except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as exc:
        where = _safe_redact(url) if url else "the Redis server"
        print(f"error: cannot reach {_one_line(where + ': ' + str(exc), url)}", file=sys.stderr)
        return EXIT_ERROR
    except (CurriculumError, redis.exceptions.RedisError, OSError) as exc:
        print(f"error: {_one_line(str(exc), url)}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
