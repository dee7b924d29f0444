"""SMPP 3.4 numbers: command ids, command statuses and optional parameter tags.

:mod:`junebug.transports.smpp.pdu` re-exports everything here.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import Final


class CommandId(enum.IntEnum):
    """SMPP 3.4 command ids (section 5.1.2.1)."""

    GENERIC_NACK = 0x80000000
    BIND_RECEIVER = 0x00000001
    BIND_RECEIVER_RESP = 0x80000001
    BIND_TRANSMITTER = 0x00000002
    BIND_TRANSMITTER_RESP = 0x80000002
    QUERY_SM = 0x00000003
    QUERY_SM_RESP = 0x80000003
    SUBMIT_SM = 0x00000004
    SUBMIT_SM_RESP = 0x80000004
    DELIVER_SM = 0x00000005
    DELIVER_SM_RESP = 0x80000005
    UNBIND = 0x00000006
    UNBIND_RESP = 0x80000006
    REPLACE_SM = 0x00000007
    REPLACE_SM_RESP = 0x80000007
    CANCEL_SM = 0x00000008
    CANCEL_SM_RESP = 0x80000008
    BIND_TRANSCEIVER = 0x00000009
    BIND_TRANSCEIVER_RESP = 0x80000009
    OUTBIND = 0x0000000B
    ENQUIRE_LINK = 0x00000015
    ENQUIRE_LINK_RESP = 0x80000015
    SUBMIT_MULTI = 0x00000021
    SUBMIT_MULTI_RESP = 0x80000021
    ALERT_NOTIFICATION = 0x00000102
    DATA_SM = 0x00000103
    DATA_SM_RESP = 0x80000103


class CommandStatus(enum.IntEnum):
    """SMPP 3.4 ``command_status`` values (section 5.1.3).

    A PDU's ``command_status`` is a plain ``int``: SMSCs also use reserved
    and vendor-specific values (0x400..0x4FF).  :func:`status_name` names any
    value.
    """

    ESME_ROK = 0x00000000
    ESME_RINVMSGLEN = 0x00000001
    ESME_RINVCMDLEN = 0x00000002
    ESME_RINVCMDID = 0x00000003
    ESME_RINVBNDSTS = 0x00000004
    ESME_RALYBND = 0x00000005
    ESME_RINVPRTFLG = 0x00000006
    ESME_RINVREGDLVFLG = 0x00000007
    ESME_RSYSERR = 0x00000008
    ESME_RINVSRCADR = 0x0000000A
    ESME_RINVDSTADR = 0x0000000B
    ESME_RINVMSGID = 0x0000000C
    ESME_RBINDFAIL = 0x0000000D
    ESME_RINVPASWD = 0x0000000E
    ESME_RINVSYSID = 0x0000000F
    ESME_RCANCELFAIL = 0x00000011
    ESME_RREPLACEFAIL = 0x00000013
    ESME_RMSGQFUL = 0x00000014
    ESME_RINVSERTYP = 0x00000015
    ESME_RINVNUMDESTS = 0x00000033
    ESME_RINVDLNAME = 0x00000034
    ESME_RINVDESTFLAG = 0x00000040
    ESME_RINVSUBREP = 0x00000042
    ESME_RINVESMCLASS = 0x00000043
    ESME_RCNTSUBDL = 0x00000044
    ESME_RSUBMITFAIL = 0x00000045
    ESME_RINVSRCTON = 0x00000048
    ESME_RINVSRCNPI = 0x00000049
    ESME_RINVDSTTON = 0x00000050
    ESME_RINVDSTNPI = 0x00000051
    ESME_RINVSYSTYP = 0x00000053
    ESME_RINVREPFLAG = 0x00000054
    ESME_RINVNUMMSGS = 0x00000055
    ESME_RTHROTTLED = 0x00000058
    ESME_RINVSCHED = 0x00000061
    ESME_RINVEXPIRY = 0x00000062
    ESME_RINVDFTMSGID = 0x00000063
    ESME_RX_T_APPN = 0x00000064
    ESME_RX_P_APPN = 0x00000065
    ESME_RX_R_APPN = 0x00000066
    ESME_RQUERYFAIL = 0x00000067
    ESME_RINVOPTPARSTREAM = 0x000000C0
    ESME_ROPTPARNOTALLWD = 0x000000C1
    ESME_RINVPARLEN = 0x000000C2
    ESME_RMISSINGOPTPARAM = 0x000000C3
    ESME_RINVOPTPARAMVAL = 0x000000C4
    ESME_RDELIVERYFAILURE = 0x000000FE
    ESME_RUNKNOWNERR = 0x000000FF


_STATUS_DESCRIPTIONS: Final[Mapping[int, str]] = {
    CommandStatus.ESME_ROK: "No Error",
    CommandStatus.ESME_RINVMSGLEN: "Message Length is invalid",
    CommandStatus.ESME_RINVCMDLEN: "Command Length is invalid",
    CommandStatus.ESME_RINVCMDID: "Invalid Command ID",
    CommandStatus.ESME_RINVBNDSTS: "Incorrect BIND Status for given command",
    CommandStatus.ESME_RALYBND: "ESME Already in Bound State",
    CommandStatus.ESME_RINVPRTFLG: "Invalid Priority Flag",
    CommandStatus.ESME_RINVREGDLVFLG: "Invalid Registered Delivery Flag",
    CommandStatus.ESME_RSYSERR: "System Error",
    CommandStatus.ESME_RINVSRCADR: "Invalid Source Address",
    CommandStatus.ESME_RINVDSTADR: "Invalid Dest Addr",
    CommandStatus.ESME_RINVMSGID: "Message ID is invalid",
    CommandStatus.ESME_RBINDFAIL: "Bind Failed",
    CommandStatus.ESME_RINVPASWD: "Invalid Password",
    CommandStatus.ESME_RINVSYSID: "Invalid System ID",
    CommandStatus.ESME_RCANCELFAIL: "Cancel SM Failed",
    CommandStatus.ESME_RREPLACEFAIL: "Replace SM Failed",
    CommandStatus.ESME_RMSGQFUL: "Message Queue Full",
    CommandStatus.ESME_RINVSERTYP: "Invalid Service Type",
    CommandStatus.ESME_RINVNUMDESTS: "Invalid number of destinations",
    CommandStatus.ESME_RINVDLNAME: "Invalid Distribution List name",
    CommandStatus.ESME_RINVDESTFLAG: "Destination flag is invalid (submit_multi)",
    CommandStatus.ESME_RINVSUBREP: "Invalid 'submit with replace' request",
    CommandStatus.ESME_RINVESMCLASS: "Invalid esm_class field data",
    CommandStatus.ESME_RCNTSUBDL: "Cannot Submit to Distribution List",
    CommandStatus.ESME_RSUBMITFAIL: "submit_sm or submit_multi failed",
    CommandStatus.ESME_RINVSRCTON: "Invalid Source address TON",
    CommandStatus.ESME_RINVSRCNPI: "Invalid Source address NPI",
    CommandStatus.ESME_RINVDSTTON: "Invalid Destination address TON",
    CommandStatus.ESME_RINVDSTNPI: "Invalid Destination address NPI",
    CommandStatus.ESME_RINVSYSTYP: "Invalid system_type field",
    CommandStatus.ESME_RINVREPFLAG: "Invalid replace_if_present flag",
    CommandStatus.ESME_RINVNUMMSGS: "Invalid number of messages",
    CommandStatus.ESME_RTHROTTLED: "Throttling error (ESME has exceeded allowed "
    "message limits)",
    CommandStatus.ESME_RINVSCHED: "Invalid Scheduled Delivery Time",
    CommandStatus.ESME_RINVEXPIRY: "Invalid message validity period (Expiry time)",
    CommandStatus.ESME_RINVDFTMSGID: "Predefined Message Invalid or Not Found",
    CommandStatus.ESME_RX_T_APPN: "ESME Receiver Temporary App Error Code",
    CommandStatus.ESME_RX_P_APPN: "ESME Receiver Permanent App Error Code",
    CommandStatus.ESME_RX_R_APPN: "ESME Receiver Reject Message Error Code",
    CommandStatus.ESME_RQUERYFAIL: "query_sm request failed",
    CommandStatus.ESME_RINVOPTPARSTREAM: "Error in the optional part of the PDU Body",
    CommandStatus.ESME_ROPTPARNOTALLWD: "Optional Parameter not allowed",
    CommandStatus.ESME_RINVPARLEN: "Invalid Parameter Length",
    CommandStatus.ESME_RMISSINGOPTPARAM: "Expected Optional Parameter missing",
    CommandStatus.ESME_RINVOPTPARAMVAL: "Invalid Optional Parameter Value",
    CommandStatus.ESME_RDELIVERYFAILURE: "Delivery Failure (used for data_sm_resp)",
    CommandStatus.ESME_RUNKNOWNERR: "Unknown Error",
}


def status_name(status: int) -> str:
    """Name a ``command_status``: ``ESME_RTHROTTLED``, or ``0x00000400``."""
    try:
        return CommandStatus(status).name
    except ValueError:
        return f"0x{status:08X}"


def status_description(status: int) -> str:
    """Describe a ``command_status`` in the spec's words."""
    description = _STATUS_DESCRIPTIONS.get(status)
    if description is not None:
        return description
    if 0x400 <= status <= 0x4FF:
        return "Reserved for SMSC vendor specific errors"
    return "Reserved"


class Tag(enum.IntEnum):
    """Optional parameter tags (SMPP 3.4 section 5.3.2)."""

    DEST_ADDR_SUBUNIT = 0x0005
    DEST_NETWORK_TYPE = 0x0006
    DEST_BEARER_TYPE = 0x0007
    DEST_TELEMATICS_ID = 0x0008
    SOURCE_ADDR_SUBUNIT = 0x000D
    SOURCE_NETWORK_TYPE = 0x000E
    SOURCE_BEARER_TYPE = 0x000F
    SOURCE_TELEMATICS_ID = 0x0010
    QOS_TIME_TO_LIVE = 0x0017
    PAYLOAD_TYPE = 0x0019
    ADDITIONAL_STATUS_INFO_TEXT = 0x001D
    RECEIPTED_MESSAGE_ID = 0x001E
    MS_MSG_WAIT_FACILITIES = 0x0030
    PRIVACY_INDICATOR = 0x0201
    SOURCE_SUBADDRESS = 0x0202
    DEST_SUBADDRESS = 0x0203
    USER_MESSAGE_REFERENCE = 0x0204
    USER_RESPONSE_CODE = 0x0205
    SOURCE_PORT = 0x020A
    DESTINATION_PORT = 0x020B
    SAR_MSG_REF_NUM = 0x020C
    LANGUAGE_INDICATOR = 0x020D
    SAR_TOTAL_SEGMENTS = 0x020E
    SAR_SEGMENT_SEQNUM = 0x020F
    SC_INTERFACE_VERSION = 0x0210
    CALLBACK_NUM_PRES_IND = 0x0302
    CALLBACK_NUM_ATAG = 0x0303
    NUMBER_OF_MESSAGES = 0x0304
    CALLBACK_NUM = 0x0381
    DPF_RESULT = 0x0420
    SET_DPF = 0x0421
    MS_AVAILABILITY_STATUS = 0x0422
    NETWORK_ERROR_CODE = 0x0423
    MESSAGE_PAYLOAD = 0x0424
    DELIVERY_FAILURE_REASON = 0x0425
    MORE_MESSAGES_TO_SEND = 0x0426
    MESSAGE_STATE = 0x0427
    USSD_SERVICE_OP = 0x0501
    DISPLAY_TIME = 0x1201
    SMS_SIGNAL = 0x1203
    MS_VALIDITY = 0x1204
    ALERT_ON_MESSAGE_DELIVERY = 0x130C
    ITS_REPLY_TYPE = 0x1380
    ITS_SESSION_INFO = 0x1383
