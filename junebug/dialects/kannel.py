"""Kannel's ``/cgi-bin/sendsms``: its parameters as Junebug messages, its answers.

The parameters are read as smsbox reads them (``GET`` query or ``POST``
form, raw bytes): ``username``/``user``, ``password``/``pass``, ``to`` (one
or more numbers, space separated), ``from``, ``text``, ``coding`` (0 7-bit,
2 UCS-2; 1, 8-bit data, is refused: Junebug messages are text), ``charset``
(the text's; by default UTF-8, or UTF-16BE with ``coding=2``, which is what
RapidPro's KN channel sends), ``priority`` (0-3), ``mclass``, ``validity``,
``dlr-mask`` and ``dlr-url``.  Parameters Kannel knows and Junebug cannot
honour (``mclass``, ``validity``, ``smsc``...) are checked as Kannel checks
them and otherwise ignored; unknown ones are ignored, as Kannel does.

Answers are Kannel's: ``202 0: Accepted for delivery``, and for a refusal its
status code and text (``403 Authorization failed for sendsms``, ``400
Missing receiver number, rejected``...), as plain text.
"""

from __future__ import annotations

import codecs
from collections.abc import Mapping
from typing import Any, Final

import attrs

from junebug.dialects.priorities import JUNEBUG_PRIORITY
from junebug.http.urls import http_url_problem

DIALECT: Final = "kannel"
ACCEPTED: Final = (202, "0: Accepted for delivery")
AUTH_FAILED: Final = (403, "Authorization failed for sendsms")
NOT_ROUTABLE: Final = (403, "Not routable. Do not try again.")
TEMPORARY: Final = (503, "Temporal failure, try again later.")
#: Kannel's default ``sendsms-chars``: what a receiver number may hold.
NUMBER_CHARS: Final = frozenset("0123456789 +-")
#: Kannel's ``%d`` DLR types, as a ``dlr-mask`` sums them.
MASK_ALL: Final = 63

Args = Mapping[bytes, list[bytes]]


class KannelRefusal(Exception):
    """A request Kannel would refuse: its status code and answer text."""

    def __init__(self, code: int, text: str) -> None:
        super().__init__(text)
        self.code = code
        self.text = text


def _rejected(text: str) -> KannelRefusal:
    return KannelRefusal(400, text)


@attrs.frozen
class SendSms:
    """A checked ``sendsms`` request: one API body per receiver, and what
    every message's record keeps for its delivery reports."""

    bodies: list[dict[str, Any]]
    extras: dict[str, Any]


def arg(args: Args, *names: str) -> bytes | None:
    """The first value of the first of ``names`` given."""
    for name in names:
        values = args.get(name.encode("ascii"))
        if values:
            return values[0]
    return None


def credentials(args: Args) -> tuple[bytes | None, bytes | None]:
    """``(username, password)``, as smsbox reads them."""
    return arg(args, "username", "user"), arg(args, "password", "pass")


def _number(args: Args, name: str, field: str, low: int, high: int) -> int | None:
    """An integer parameter within ``low..high`` (-1 is unset, as in Kannel)."""
    raw = arg(args, name)
    if raw is None:
        return None
    try:
        value = int(raw.strip())
    except ValueError:
        raise _rejected(f"{field} field misformed, rejected") from None
    if value == -1:
        return None
    if not low <= value <= high:
        raise _rejected(f"{field} field misformed, rejected")
    return value


def _receivers(args: Args) -> list[str]:
    to = arg(args, "to")
    if to is None:
        raise _rejected("Missing receiver number, rejected")
    if not to.strip():
        raise _rejected("Empty receiver number not allowed, rejected")
    allowed: list[str] = []
    for raw in to.split():
        number = raw.decode("latin-1")
        if set(number) <= NUMBER_CHARS and number not in allowed:
            allowed.append(number)
    if not allowed:
        raise _rejected("Number(s) has/have been denied by white- and/or black-lists.")
    return allowed


def _text(args: Args, coding: int | None) -> str:
    raw = arg(args, "text") or b""
    charset = arg(args, "charset")
    if coding == 2:
        name = (charset or b"UTF-16BE").decode("latin-1")
    else:
        name = (charset or b"UTF-8").decode("latin-1")
    try:
        codec = codecs.lookup(name)
        return codec.decode(raw)[0]
    except (LookupError, UnicodeDecodeError, ValueError):
        raise _rejected("Charset or body misformed, rejected") from None


def _dlr_url(args: Args) -> str | None:
    raw = arg(args, "dlr-url", "dlrurl")
    if raw is None or raw == b"":
        return None
    try:
        url = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise _rejected("DLR-URL field misformed, rejected") from None
    if http_url_problem(url) is not None:
        raise _rejected("DLR-URL field misformed, rejected")
    return url


def parse_sendsms(args: Args) -> SendSms:
    """Check a (authenticated) request as smsbox does; raise KannelRefusal."""
    receivers = _receivers(args)
    if arg(args, "udh") is not None:
        raise _rejected("UDH field not supported, rejected")
    dlr_url = _dlr_url(args)
    dlr_mask = _number(args, "dlr-mask", "DLR-Mask", 0, MASK_ALL)
    if dlr_mask is None:
        dlr_mask = _number(args, "dlrmask", "DLR-Mask", 0, MASK_ALL)
    _number(args, "mclass", "MClass", 0, 3)
    coding = _number(args, "coding", "Coding", 0, 2)
    if coding == 1:
        raise _rejected("Coding field misformed, rejected (8-bit data not supported)")
    validity = _number(args, "validity", "Validity", 0, 2**31)
    priority = _number(args, "priority", "Priority", 0, 3)
    text = _text(args, coding)
    sender = arg(args, "from")
    base: dict[str, Any] = {"content": text}
    if sender:
        try:
            base["from"] = sender.decode("utf-8")
        except UnicodeDecodeError:
            raise _rejected("Sender field misformed, rejected") from None
    if priority is not None:
        base["priority"] = JUNEBUG_PRIORITY[priority]
    extras: dict[str, Any] = {"dialect": DIALECT}
    if dlr_url is not None and dlr_mask:
        extras["dlr_url"] = dlr_url
        extras["dlr_mask"] = dlr_mask
    if validity is not None:
        extras["validity"] = validity
    return SendSms([{**base, "to": to} for to in receivers], extras)
