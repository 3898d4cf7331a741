"""``crmkit staff password``, ``crmkit token create|list|revoke`` and ``crmkit roles``:
staff sign-in, API tokens and what each role may do (:mod:`crmkit.core.identity`).

A password is never an option or argument (it would stay in the shell history and show
in ``ps``): ``crmkit staff password STAFF`` prompts twice without echo on a terminal, and
reads one line from standard input otherwise (``printf '%s\\n' "$PW" | crmkit staff
password li.na``). A token's text is printed once, by ``token create``; nothing shows it
again.
"""

from __future__ import annotations

import datetime as dt
import json
import sys
import zoneinfo
from typing import TYPE_CHECKING, Any

import click

from crmkit.cli import UserError, cli, pass_crm
from crmkit.cli import params as p
from crmkit.cli.activity import staff
from crmkit.cli.output import emit, format_option

if TYPE_CHECKING:
    from crmkit.core import identity

# -- staff password ------------------------------------------------------------------


@staff.command("password")
@click.argument("username")
@pass_crm
def staff_password(crm: Any, username: str) -> None:
    """Set staff member USERNAME's password; their sessions end.

    On a terminal the password is asked twice and not shown. From a script, give it as
    one line on standard input (it is never an option or argument): printf '%s\\n' "$PW" |
    crmkit staff password USERNAME. At least 10 characters, not the username.
    """
    from crmkit.core import identity  # SQLAlchemy: imported when a command runs

    crm.staff.get(username)  # an unknown member is refused before anything is asked
    actor = crm.actor
    if not (actor.kind == "staff" and actor.username == username):
        crm.authorise("staff.admin")
    password = _read_password(username)
    identity.set_password(crm, username, password)
    click.echo(f"password of {username} set; their sessions have ended")


def _read_password(username: str) -> str:
    stdin = sys.stdin
    if stdin.isatty():
        return click.prompt(
            f"New password for {username}",
            hide_input=True,
            confirmation_prompt="Repeat it",
            err=True,
        )
    line = stdin.readline()
    password = line.rstrip("\r\n")
    if not password:
        raise UserError(
            "no password on standard input; run on a terminal to be asked, or pipe one "
            "line: printf '%s\\n' \"$PW\" | crmkit staff password " + username
        )
    return password


# -- tokens --------------------------------------------------------------------------------


@cli.group(cls=p.RecordGroup)
def token() -> None:
    """API tokens for other systems (shop, ERP, call centre): shown once, stored hashed."""


def _expiry(text: str, timezone: str) -> dt.datetime | None:
    """``never``, a date (valid through that day in the configured zone) or a datetime."""
    value = text.strip()
    if value.lower() == "never":
        return None
    if len(value) == 10:
        day = p.day(value, "--expires")
        assert day is not None
        start = dt.datetime(day.year, day.month, day.day, tzinfo=zoneinfo.ZoneInfo(timezone))
        # the last second of that day: listed as 'YYYY-MM-DD 23:59'
        return (start + dt.timedelta(days=1, seconds=-1)).astimezone(dt.UTC)
    moment = p.moment(value, "--expires", timezone)
    return None if moment is None else moment.astimezone(dt.UTC)


@token.command("create")
@click.option("--staff", "username", required=True, help="Username the token acts as.")
@click.option(
    "--scopes", "scope_texts", required=True, multiple=True,
    help="What the token may do, comma-separated or repeated: permissions "
    "(customers.read, orders.write), an area (customers.*) or everything (*). Never more "
    "than the staff member's roles allow.",
)  # fmt: skip
@click.option(
    "--expires", required=True,
    help="Last day it works (2027-01-31: through that day in the configured time zone), "
    "an ISO datetime, or 'never'.",
)  # fmt: skip
@click.option("--name", default="", help="What it is for (e.g. 'web shop').")
@format_option("text", "json", default="text")
@pass_crm
def token_create(
    crm: Any, username: str, scope_texts: tuple[str, ...], expires: str, name: str, fmt: str
) -> None:
    """Create an API token for a staff member; it is printed once, only its hash is kept."""
    from crmkit.core import identity  # SQLAlchemy: imported when a command runs

    scopes = [s.strip() for text in scope_texts for s in text.split(",") if s.strip()]
    expires_at = _expiry(expires, crm.config.timezone)
    text, info = identity.create_token(
        crm, username, scopes=scopes, expires_at=expires_at, name=name
    )
    if fmt == "json":
        created = {**_row(crm, info), "token": text}
        click.echo(json.dumps(created, ensure_ascii=False, indent=2))
        return
    until = p.local(crm, info.expires_at) if info.expires_at else "never"
    click.echo(
        f"created API token {info.id} for {info.staff} (scopes: {', '.join(info.scopes)}; "
        f"expires: {until})"
    )
    click.echo(text)
    click.echo("This token is shown only once: store it now (crmkit keeps only its hash).")


def _row(crm: Any, info: identity.TokenInfo) -> dict[str, Any]:
    from crmkit.core import identity  # SQLAlchemy: imported when a command runs

    return {
        "id": info.id,
        "staff": info.staff,
        "name": info.name,
        "prefix": f"{identity.TOKEN_PREFIX}{info.prefix}…",
        "scopes": ",".join(info.scopes),
        "created_at": p.local(crm, info.created_at),
        "expires_at": p.local(crm, info.expires_at) or "never",
        "last_used_at": p.local(crm, info.last_used_at),
        "revoked_at": p.local(crm, info.revoked_at),
        "active": info.active,
        "created_by": info.created_by,
    }


@token.command("list")
@click.option("--staff", "username", default=None, help="Only this staff member's tokens.")
@format_option()
@pass_crm
def token_list(crm: Any, username: str | None, fmt: str) -> None:
    """API tokens, newest first (never their text): prefix, scopes, expiry, last use."""
    from crmkit.core import identity  # SQLAlchemy: imported when a command runs

    rows = [_row(crm, info) for info in identity.list_tokens(crm, username)]
    columns = ["id", "staff", "name", "prefix", "scopes", "expires_at", "last_used_at"]
    emit(rows, fmt, [*columns, "active"] if fmt == "table" else None)


@token.command("revoke")
@click.argument("token_id", type=int, metavar="ID")
@pass_crm
def token_revoke(crm: Any, token_id: int) -> None:
    """Revoke API token ID: it stops working at once."""
    from crmkit.core import identity  # SQLAlchemy: imported when a command runs

    info = identity.revoke_token(crm, token_id)
    click.echo(f"revoked API token {info.id} of {info.staff}")


__all__ = ["staff_password", "token", "token_create", "token_list", "token_revoke"]


@cli.command("roles")
@click.option("--role", default=None, help="Only this role.")
@format_option()
@pass_crm
def roles(crm: Any, role: str | None, fmt: str) -> None:
    """Every role with the permissions it grants and at which scope (own, team, all):
    the core's defaults, the plugins', and [roles.<name>] of crmkit.toml."""
    described = crm.permissions.describe()
    if role is not None and role not in {r["role"] for r in described}:
        known = ", ".join(r["role"] for r in described)
        raise UserError(f"no role {role!r}; roles: {known}")
    rows = [
        {
            "role": item["role"],
            "permission": name,
            "scope": scope if crm.permissions.specs[name].scoped else "-",
            "declared_by": crm.permissions.specs[name].declared_by,
        }
        for item in described
        if role in (None, item["role"])
        for name, scope in item["grants"].items()
    ]
    emit(rows, fmt)
