"""A test SMSC on the ``smpp34`` server (Rust core); run as a script.

Adapted from ``shared/peers/smpp34_smsc.py``: the same modes and answers, and
one ``SUBMIT {json}`` line per ``submit_sm`` so that tests can check what
arrived.  Environment: ``PORT``, ``MODE`` (``dlr``: acks, a delivery receipt
per message asking for one, one MO after each bind; ``ack-only``;
``throttle-every-3``: every third ``submit_sm`` gets ``ESME_RTHROTTLED``).
Any credentials bind.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import sys
import time
from collections.abc import Coroutine
from typing import Any

import smpp34

PORT = int(os.environ.get("PORT", "2775"))
MODE = os.environ.get("MODE", "dlr")
# SMPP 3.4 numbers (the smpp34 stubs do not declare its own constants).
ESME_RTHROTTLED = 0x58
TLV_RECEIPTED_MESSAGE_ID = 0x001E
TLV_MESSAGE_STATE = 0x0427


def say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def describe(event: smpp34.SubmitSmEvent, number: int, status: int) -> str:
    return json.dumps(
        {
            "n": number,
            "status": status,
            "source_addr": event.source_addr,
            "destination_addr": event.destination_addr,
            "data_coding": event.data_coding,
            "esm_class": event.esm_class,
            "registered_delivery": event.registered_delivery,
            "short_message": event.short_message.hex(),
            "tlvs": {str(tlv.tag): tlv.value.hex() for tlv in event.tlvs},
        }
    )


async def send_mo(esme: smpp34.Esme) -> None:
    try:
        response = await esme.deliver_sm(
            "1234", b"hello MO from smpp34", source_addr="27820001111"
        )
        say(f"MO deliver_sm_resp status={response.command_status}")
    except smpp34.SmppError as exc:
        say(f"MO deliver_sm failed: {exc}")


async def send_receipt(
    esme: smpp34.Esme, event: smpp34.SubmitSmEvent, message_id: str
) -> None:
    now = time.strftime("%y%m%d%H%M")
    quoted = event.short_message[:20].decode("latin-1")
    text = (
        f"id:{message_id} sub:001 dlvrd:001 submit date:{now} done date:{now} "
        f"stat:DELIVRD err:000 text:{quoted}"
    ).encode("latin-1", "replace")
    tlvs = [
        smpp34.Tlv(TLV_RECEIPTED_MESSAGE_ID, message_id.encode() + b"\0"),
        smpp34.Tlv(TLV_MESSAGE_STATE, bytes([2])),
    ]
    try:
        response = await esme.deliver_sm(
            event.source_addr,
            text,
            source_addr=event.destination_addr,
            esm_class=0x04,
            tlvs=tlvs,
        )
        say(f"DLR for {message_id} deliver_sm_resp status={response.command_status}")
    except smpp34.SmppError as exc:
        say(f"DLR deliver_sm failed: {exc}")


async def main() -> None:
    server = smpp34.Server(host="127.0.0.1", port=PORT, system_id="SMPP34SIM")
    await server.start()
    say(f"smpp34 SMSC listening on 127.0.0.1:{PORT} mode={MODE}")
    sessions: dict[str, smpp34.Esme] = {}
    ids = itertools.count(1)
    tasks: set[asyncio.Task[None]] = set()
    number = 0

    def spawn(coroutine: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coroutine)
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    while True:
        event = await server.next()
        if isinstance(event, smpp34.Esme):
            sessions[event.session_id] = event
            say(
                f"bound: system_id={event.system_id} session={event.session_id} "
                f"can_receive={event.can_receive}"
            )
            if MODE == "dlr" and event.can_receive:
                spawn(send_mo(event))
        elif isinstance(event, smpp34.SubmitSmEvent):
            number += 1
            if MODE == "throttle-every-3" and number % 3 == 0:
                say("SUBMIT " + describe(event, number, ESME_RTHROTTLED))
                event.reject(ESME_RTHROTTLED)
                continue
            say("SUBMIT " + describe(event, number, 0))
            message_id = f"{next(ids):x}"
            event.accept(message_id=message_id)
            esme = sessions.get(event.session_id)
            if MODE == "dlr" and event.registered_delivery & 1 and esme is not None:
                spawn(send_receipt(esme, event, message_id))
        elif isinstance(event, smpp34.Unbound):
            sessions.pop(event.session_id, None)
            say(f"unbound: {event.session_id}")


if __name__ == "__main__":
    asyncio.run(main())
