"""Jasmin's ``/send``: its arguments as a Junebug message, its answers.

The arguments are checked as Jasmin's HTTP API checks them, in its order
and with its texts: none at all, an unknown one, a value not matching its
pattern, a missing mandatory one (``to``, ``username``, ``password``), then
``content`` and ``hex-content`` (exactly one).  They come from the query
(``GET``), a form (``POST``) or a JSON object (``POST`` with
``application/json``), as Jasmin takes them.

``coding`` says what ``hex-content`` holds: 0 GSM 03.38, 1 ASCII, 3
Latin-1, 8 UCS-2 (UTF-16BE: what RapidPro's JS channel sends for text that
is not GSM, e.g. ``hex-content=263a`` for U+263A); ``content`` is text.
Binary codings (2, 4) and the others Jasmin accepts are refused: Junebug
messages are text.  ``priority`` 0-3 becomes Junebug's (see
:mod:`.priorities`); ``dlr``, ``dlr-url``, ``dlr-level`` and ``dlr-method``
are kept for the delivery reports.

Answers are Jasmin's plain text: ``Success "<message id>"`` (200), ``Error
"<why>"`` with 400 for bad arguments, 403 for bad credentials, 412 when the
user's channel or destination cannot take the message, 500 otherwise.
"""

from __future__ import annotations

import binascii
import json
import re
from collections.abc import Mapping
from typing import Any, Final

import attrs

from junebug.dialects.priorities import JUNEBUG_PRIORITY
from junebug.transports.smpp.gsm0338 import gsm_decode

DIALECT: Final = "jasmin"
NO_ROUTE: Final = (412, "No route found")
SUBMIT_FAILED: Final = (500, "Cannot send submit_sm, the message broker is away")

_FIELDS: Final[dict[str, re.Pattern[bytes] | None]] = {
    "to": re.compile(rb"^\+{0,1}\d+$"),
    "from": None,
    "coding": re.compile(rb"^(0|1|2|3|4|5|6|7|8|9|10|13|14){1}$"),
    # Jasmin allows 1-16 characters; any non-empty value is taken here.
    "username": re.compile(rb"^.+$"),
    "password": re.compile(rb"^.+$"),
    "priority": re.compile(rb"^[0-3]$"),
    "sdt": re.compile(rb"^\d{2}\d{2}\d{2}\d{2}\d{2}\d{2}\d{1}\d{2}(\+|-|R)$"),
    "validity-period": re.compile(rb"^\d+$"),
    "dlr": re.compile(rb"^(yes|no)$"),
    "dlr-url": re.compile(rb"^(http|https)\://.*$"),
    "dlr-level": re.compile(rb"^[1-3]$"),
    "dlr-method": re.compile(rb"^(get|post)$", re.IGNORECASE),
    "tags": re.compile(rb"^([-a-zA-Z0-9,])*$"),
    "content": None,
    "hex-content": None,
    "custom_tlvs": None,
}
_MANDATORY: Final = ("to", "username", "password")
#: ``hex-content`` codecs by ``coding``.
_HEX_CODINGS: Final = {"0": "gsm", "1": "ascii", "3": "latin-1", "8": "utf-16-be"}


class JasminRefusal(Exception):
    """A request Jasmin would refuse: its status code and ``Error`` text."""

    def __init__(self, code: int, text: str) -> None:
        super().__init__(text)
        self.code = code
        self.text = text


def _refused(text: str) -> JasminRefusal:
    return JasminRefusal(400, text)


@attrs.frozen
class Send:
    """A checked ``/send``: the API body and the record's DLR settings."""

    body: dict[str, Any]
    extras: dict[str, Any]


def arguments(
    args: Mapping[bytes, list[bytes]], content_type: bytes | None, body: bytes
) -> dict[str, bytes]:
    """The first value of each argument, from the query, form or JSON."""
    found = {key.decode("latin-1"): values[0] for key, values in args.items() if values}
    if content_type is not None and content_type.split(b";")[0].strip() == (
        b"application/json"
    ):
        try:
            data = json.loads(body or b"{}")
        except ValueError:
            raise _refused("Invalid JSON body.") from None
        if not isinstance(data, dict):
            raise _refused("Invalid JSON body.")
        for key, value in data.items():
            if isinstance(value, str):
                found[str(key)] = value.encode("utf-8")
            elif isinstance(value, bool | int | float):
                found[str(key)] = str(value).encode("ascii")
            elif key == "custom_tlvs":
                found[key] = b""
    return found


def credentials(found: Mapping[str, bytes]) -> tuple[bytes | None, bytes | None]:
    return found.get("username"), found.get("password")


def check(found: Mapping[str, bytes]) -> None:
    """Jasmin's argument validation (raise JasminRefusal)."""
    if not found:
        raise _refused(
            "Mandatory arguments not found, please refer to the HTTPAPI specifications."
        )
    for name in found:
        if name not in _FIELDS:
            raise _refused(f"Argument [{name}] is unknown.")
    for name, pattern in _FIELDS.items():
        value = found.get(name)
        if value is None:
            if name in _MANDATORY:
                raise _refused(f"Mandatory argument [{name}] is not found.")
            continue
        if pattern is not None and pattern.match(value) is None:
            shown = "***" if name == "password" else value.decode("utf-8", "replace")
            raise _refused(f"Argument [{name}] has an invalid value: [{shown}].")
    if "content" not in found and "hex-content" not in found:
        raise _refused("content or hex-content not present.")
    if "content" in found and "hex-content" in found:
        raise _refused("content and hex-content cannot be used both in same request.")


def _text(found: Mapping[str, bytes]) -> str:
    coding = found.get("coding", b"0").decode("ascii")
    if coding not in _HEX_CODINGS:
        raise _refused(f"coding {coding} is not supported: messages are text.")
    if "content" in found:
        try:
            return found["content"].decode("utf-8")
        except UnicodeDecodeError:
            raise _refused("content is not UTF-8 text.") from None
    try:
        data = binascii.unhexlify(found["hex-content"].strip())
    except (binascii.Error, ValueError):
        raise _refused("hex-content is not hexadecimal.") from None
    try:
        if _HEX_CODINGS[coding] == "gsm":
            return gsm_decode(data)
        return data.decode(_HEX_CODINGS[coding])
    except (UnicodeDecodeError, ValueError):
        raise _refused(f"hex-content is not text in coding {coding}.") from None


def parse_send(found: Mapping[str, bytes]) -> Send:
    """The message of a checked, authenticated ``/send``."""
    text = _text(found)
    body: dict[str, Any] = {"to": found["to"].decode("ascii"), "content": text}
    sender = found.get("from")
    if sender:
        try:
            body["from"] = sender.decode("utf-8")
        except UnicodeDecodeError:
            raise _refused(
                f"Argument [from] has an invalid value: [{sender!r}]."
            ) from None
    if "priority" in found:
        body["priority"] = JUNEBUG_PRIORITY[int(found["priority"])]
    extras: dict[str, Any] = {"dialect": DIALECT}
    # As in Jasmin, dlr-url or dlr-level alone asks for reports (dlr=yes).
    if found.get("dlr") == b"yes" or "dlr-url" in found or "dlr-level" in found:
        url = found.get("dlr-url")
        if url is None:
            raise _refused("dlr-url argument is mandatory if dlr is requested.")
        extras["dlr_url"] = url.decode("utf-8", "replace")
        extras["dlr_level"] = int(found.get("dlr-level", b"1"))
        extras["dlr_method"] = found.get("dlr-method", b"POST").decode().upper()
    return Send(body, extras)
