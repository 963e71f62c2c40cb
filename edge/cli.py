"""The station's ``qc`` subcommands: ``qc edge``, ``qc keys`` and ``qc data export-feedback``.

``qc.cli`` names this module by string and calls ``add_commands`` while it builds its parser; the
handlers import the station's code only when they run.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from edge.storage.config import default_database_url
from qc.cli import EXIT_OK, CommandGroups, UserError

DEFAULT_DATA_DIR = Path("var")  # make run's station, from the repository root
DEFAULT_STATION_DATABASE = default_database_url(DEFAULT_DATA_DIR)


def cmd_export_feedback(args: argparse.Namespace, argv: list[str]) -> int:
    from edge.reports.feedback import export_feedback

    database_url = args.database_url or default_database_url(args.data_dir)
    try:
        summary = export_feedback(database_url, args.data_dir, args.out)
    except FileExistsError as exc:
        raise UserError(str(exc)) from exc
    print(json.dumps(summary, indent=2))
    return EXIT_OK


def keys_command(args: argparse.Namespace, *, out=print) -> int:
    """Run one ``qc keys`` action on the station database; 0 on success, 2 on a refused action."""
    from edge.storage.engine import open_engine
    from edge.storage.keys import KeyRefused, KeyStore
    from edge.storage.migrate import upgrade_database

    engine = open_engine(args.database_url)
    try:
        # The station's own start-up step (Alembic stamp, PostgreSQL advisory lock), so a database
        # that `qc keys` creates first is one the station finds already under Alembic.
        upgrade_database(engine)
        keys = KeyStore(engine)
        try:
            if args.action == "create":
                token = keys.create(args.name, args.role)
                out(f"key {args.name!r} ({args.role}) created; its token, shown only now:")
                out(token)
            elif args.action == "list":
                for k in keys.list():
                    state = f"revoked {k.revoked_at:%Y-%m-%d %H:%M}Z" if k.revoked_at else "active"
                    out(f"{k.name}\t{k.role}\t{k.key_id}\tcreated {k.created_at:%Y-%m-%d %H:%M}Z\t{state}")
            elif args.action == "revoke":
                keys.revoke(args.name)
                out(f"key {args.name!r} revoked")
            else:
                raise KeyRefused(f"unknown action {args.action!r}")
        except KeyRefused as exc:
            out(f"qc keys: {exc}")
            return 2
        return 0
    finally:
        engine.dispose()


def cmd_keys(args: argparse.Namespace, argv: list[str]) -> int:
    if args.config is not None:  # the database that station opens, its data_dir resolved alike
        from edge.config import load_config
        from qc.overrides import ConfigError

        try:
            args.database_url = load_config(args.config).storage.resolved_database_url()
        except ConfigError as exc:
            raise UserError(str(exc)) from exc
    elif args.database_url is None:
        args.database_url = DEFAULT_STATION_DATABASE
    return keys_command(args)


def cmd_edge(args: argparse.Namespace, argv: list[str]) -> int:
    from edge.main import run_edge
    from qc.card import ModelRefused
    from qc.overrides import ConfigError

    try:
        return run_edge(args.config, args.overrides)
    except ConfigError as exc:
        raise UserError(str(exc)) from exc
    except ModelRefused as exc:
        raise UserError(f"model refused: {exc}") from exc


def add_commands(groups: CommandGroups) -> None:
    d = groups.data.add_parser(
        "export-feedback", help="operator-reviewed units as an MVTec dataset to retrain on"
    )
    d.add_argument("--out", type=Path, required=True)
    d.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR, help="the station's data folder")
    d.add_argument("--database-url", default=None, help=f"default: {default_database_url(Path('<data-dir>'))}")
    d.set_defaults(handler=cmd_export_feedback)

    p = groups.top.add_parser("keys", help="manage a station's API keys (viewer, operator, admin)")
    keys = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    database = argparse.ArgumentParser(add_help=False)
    station = database.add_mutually_exclusive_group()
    station.add_argument(
        "--database-url",
        help=f"the station database (default: {DEFAULT_STATION_DATABASE}, the default station's "
        "when run from the repository root)",
    )
    station.add_argument(
        "--config", type=Path, help="the station's config (as for qc edge): the database it opens"
    )
    k = keys.add_parser("create", parents=[database], help="make a key and print its token once")
    k.add_argument("name")
    k.add_argument("--role", choices=["viewer", "operator", "admin"], default="viewer")
    keys.add_parser("list", parents=[database], help="list keys (never their tokens)")
    k = keys.add_parser("revoke", parents=[database], help="revoke the active key of that name")
    k.add_argument("name")
    p.set_defaults(handler=cmd_keys)

    p = groups.top.add_parser("edge", help="run the line-side inspection service")
    p.add_argument("--config", type=Path, default=Path("configs/edge/default.yaml"))
    p.add_argument("overrides", nargs="*", metavar="key=value", help="e.g. api.port=8001")
    p.set_defaults(handler=cmd_edge)
