"""``curriculum-redis load-scripts``: the admin step of the ACL recipe (README, Security)."""

from __future__ import annotations

import argparse
import json
from typing import Any

from curriculum_redis import admin


def add_load_scripts_command(add: Any) -> None:
    """The CLI's ``load-scripts`` command (``add`` is the CLI's sub-command factory)."""
    sub = add("load-scripts", _cmd_load_scripts, "Load the Lua scripts for workers whose ACL forbids SCRIPT LOAD.")
    sub.add_argument("--json", action="store_true", help="print the scripts' SHA1s as JSON")


def _cmd_load_scripts(args: argparse.Namespace, console: Any) -> int:
    from curriculum_redis import cli  # the CLI's URL and client helpers (cli imports this module)

    shas = cli._with_client(args, admin.load_scripts)
    if args.json:
        print(json.dumps(shas))
    else:
        console.print(f"loaded {len(shas)} scripts (run again after a restart, failover or SCRIPT FLUSH)")
    return 0
