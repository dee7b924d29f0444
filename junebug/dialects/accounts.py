"""Send users: who may send through the dialects, and through what.

A send user (``send_users`` in the config, Kannel's ``sendsms-user`` and
Jasmin's user in one) has a ``username`` and ``password`` and sends through
one channel (``channel_id``) or one router destination (``router_id`` and
``destination_id``); ``dialects`` limits which interfaces it may use.
"""

from __future__ import annotations

import hmac
from collections.abc import Iterable, Mapping
from typing import Any, Final

import attrs

from junebug.converter import structure
from junebug.redaction import MASKED, SECRET

DIALECTS: Final = ("kannel", "jasmin")


def _dialects(_inst: Any, attribute: attrs.Attribute[Any], value: list[str]) -> None:
    unknown = sorted(set(value) - set(DIALECTS))
    if unknown:
        raise ValueError(
            f"{attribute.name}: unknown dialect(s) {', '.join(unknown)}; "
            f"known: {', '.join(DIALECTS)}"
        )


@attrs.frozen
class SendUser:
    """One account of the dialects' send interfaces."""

    username: str = attrs.field(metadata={"doc": "The user's name"})
    password: str = attrs.field(
        metadata={**SECRET, "doc": "The user's password"}, repr=MASKED
    )
    channel_id: str | None = attrs.field(
        default=None, metadata={"doc": "The channel it sends through"}
    )
    router_id: str | None = attrs.field(
        default=None, metadata={"doc": "The router of destination_id"}
    )
    destination_id: str | None = attrs.field(
        default=None, metadata={"doc": "The router destination it sends from"}
    )
    dialects: list[str] = attrs.field(
        factory=lambda: list(DIALECTS),
        validator=_dialects,
        metadata={"doc": "The dialects it may use (kannel, jasmin)"},
    )

    def __attrs_post_init__(self) -> None:
        by_channel = self.channel_id is not None
        by_router = self.router_id is not None or self.destination_id is not None
        if by_channel == by_router:
            raise ValueError(
                f"send user {self.username!r}: give channel_id, or router_id "
                "and destination_id"
            )
        if by_router and (self.router_id is None or self.destination_id is None):
            raise ValueError(
                f"send user {self.username!r}: router_id and destination_id go together"
            )


def send_users(entries: Iterable[Mapping[str, Any]]) -> list[SendUser]:
    """The config's ``send_users`` entries, checked (ValueError if bad)."""
    users = [
        structure(dict(entry), SendUser, path="send_users", forbid_extra_keys=True)
        for entry in entries
    ]
    names = [user.username for user in users]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise ValueError(f"send_users: duplicate username(s) {', '.join(duplicates)}")
    return users


def _equal(given: bytes, expected: str) -> bool:
    return hmac.compare_digest(given, expected.encode("utf-8"))


class SendAccounts:
    """Looks send users up by their credentials."""

    def __init__(self, users: Iterable[SendUser]) -> None:
        self._users = {user.username.encode("utf-8"): user for user in users}

    def __bool__(self) -> bool:
        return bool(self._users)

    def authenticate(
        self, username: bytes | None, password: bytes | None, dialect: str
    ) -> SendUser | None:
        """The user with these credentials allowed ``dialect``, or None.

        The password is compared in constant time, and compared (with an
        empty one) even for an unknown user.
        """
        user = self._users.get(username or b"")
        matches = _equal(password or b"", user.password if user else "")
        if user is None or not matches or password is None:
            return None
        if dialect not in user.dialects:
            return None
        return user
