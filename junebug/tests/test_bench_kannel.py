"""The Kannel baseline of ``python -m bench``: its pure parts, no Kannel needed.

The generated ``kannel.conf`` (every group, loopback, the node SMSC, the
sink), the ``sendsms`` query of each MT, the sink's Kannel routes and the
load generator's GET requests.
"""

from __future__ import annotations

import os
import re
from urllib.parse import parse_qs

from twisted.trial.unittest import SynchronousTestCase

from bench.harness import descendants, tree_cpu_seconds
from bench.kannel import PASSWORD, USER, KannelSetup, kannel_conf, sendsms_query
from bench.loadgen import _Target
from bench.sink import RECORDS, SinkProtocol


def _groups(text: str) -> dict[str, dict[str, str]]:
    """The groups of a kannel.conf by name, each its settings unquoted."""
    found: dict[str, dict[str, str]] = {}
    current: dict[str, str] = {}
    for line in text.splitlines():
        match = re.fullmatch(r'([a-z-]+) = "?([^"]*)"?', line)
        if not match:
            continue
        key, value = match.groups()
        if key == "group":
            current = found.setdefault(value, {})
        else:
            current[key] = value
    return found


class KannelConfTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.setup = KannelSetup(
            smsc_port=2775,
            sink_url="http://127.0.0.1:8080",
            directory="/tmp/kannel-x",
            admin_port=13000,
            smsbox_port=13001,
            sendsms_port=13013,
        )
        self.groups = _groups(kannel_conf(self.setup))

    def test_every_group_once(self) -> None:
        text = kannel_conf(self.setup)
        self.assertEqual(
            set(self.groups),
            {"core", "smsc", "smsbox", "sendsms-user", "sms-service"},
        )
        self.assertEqual(text.count("group = "), 5)

    def test_core_listens_on_loopback_and_keeps_reports_in_memory(self) -> None:
        core = self.groups["core"]
        self.assertEqual(core["admin-port"], "13000")
        self.assertEqual(core["smsbox-port"], "13001")
        self.assertEqual(core["admin-interface"], "127.0.0.1")
        self.assertEqual(core["smsbox-interface"], "127.0.0.1")
        self.assertEqual(core["dlr-storage"], "internal")
        self.assertEqual(core["log-level"], "4")
        self.assertTrue(core["log-file"].startswith("/tmp/kannel-x/"))
        self.assertTrue(core["store-location"].startswith("/tmp/kannel-x/"))

    def test_smsc_is_the_node_peer_as_junebug_binds_it(self) -> None:
        smsc = self.groups["smsc"]
        self.assertEqual(smsc["smsc"], "smpp")
        self.assertEqual((smsc["host"], smsc["port"]), ("127.0.0.1", "2775"))
        self.assertEqual(smsc["transceiver-mode"], "true")
        self.assertEqual(smsc["smsc-username"], "esme1")
        self.assertEqual(smsc["smsc-password"], "secret")
        self.assertEqual(smsc["max-pending-submits"], "10")
        self.assertIn("system-type", smsc)  # bearerbox refuses to start without

    def test_smsbox_sendsms_and_service(self) -> None:
        smsbox = self.groups["smsbox"]
        self.assertEqual(smsbox["bearerbox-port"], "13001")
        self.assertEqual(smsbox["sendsms-port"], "13013")
        self.assertEqual(smsbox["sendsms-interface"], "127.0.0.1")
        user = self.groups["sendsms-user"]
        self.assertEqual((user["username"], user["password"]), (USER, PASSWORD))
        service = self.groups["sms-service"]
        self.assertEqual(service["keyword"], "default")
        self.assertEqual(service["post-url"], "http://127.0.0.1:8080/kannel/mo")
        self.assertEqual(service["max-messages"], "0")  # no reply to the phone
        self.assertEqual(
            self.setup.sendsms_url, "http://127.0.0.1:13013/cgi-bin/sendsms"
        )

    def test_a_value_that_cannot_be_quoted_is_refused(self) -> None:
        setup = KannelSetup(
            smsc_port=1, sink_url='http://x/"', directory="/tmp/k", admin_port=1
        )
        self.assertRaises(ValueError, kannel_conf, setup)

    def test_free_ports_by_default(self) -> None:
        setup = KannelSetup(smsc_port=1, sink_url="http://x", directory="/tmp/k")
        ports = {setup.admin_port, setup.smsbox_port, setup.sendsms_port}
        self.assertTrue(all(0 < port < 65536 for port in ports))


class SendsmsQueryTests(SynchronousTestCase):
    def test_every_report_to_the_sink_under_the_request_number(self) -> None:
        query = parse_qs(sendsms_query("http://127.0.0.1:8080")(42).decode())
        self.assertEqual(query["username"], [USER])
        self.assertEqual(query["password"], [PASSWORD])
        self.assertEqual(query["to"], ["27820001111"])
        self.assertEqual(query["from"], ["1234"])
        self.assertEqual(query["text"], ["bench MT 42"])
        self.assertEqual(query["dlr-mask"], ["31"])
        self.assertEqual(
            query["dlr-url"], ["http://127.0.0.1:8080/kannel/dlr?id=42&type=%d"]
        )


class SinkKannelRouteTests(SynchronousTestCase):
    def setUp(self) -> None:
        RECORDS.reset()
        self.addCleanup(RECORDS.reset)
        self.sink = SinkProtocol()

    def test_reports_become_the_events_they_stand_for(self) -> None:
        for kind in ("8", "1"):
            self.sink.handle("GET", f"/kannel/dlr?id=7&type={kind}", b"")
        self.sink.handle("GET", "/kannel/dlr?id=7&type=1", b"")
        stats = RECORDS.stats()
        self.assertEqual(
            stats["event_types"], {"submitted": 1, "delivery_succeeded": 2}
        )
        self.assertEqual(set(RECORDS.events["7"]), {"submitted", "delivery_succeeded"})
        self.assertEqual(stats["event_repeats"], 1)
        self.assertEqual(stats["bad"], 0)

    def test_a_report_without_id_or_type_is_counted_bad(self) -> None:
        self.sink.handle("GET", "/kannel/dlr?type=1", b"")
        self.sink.handle("GET", "/kannel/dlr?id=3", b"")
        self.assertEqual(RECORDS.stats()["bad"], 2)
        self.assertEqual(RECORDS.events, {})

    def test_mo_text_is_counted_and_timed_as_a_junebug_mo(self) -> None:
        self.sink.handle("POST", "/kannel/mo", b"bench MO 3 1.5")
        self.sink.handle("POST", "/mo", b'{"content": "bench MO 4 1.5"}')
        stats = RECORDS.stats()
        self.assertEqual((stats["mo_posts"], stats["mo_unique"]), (2, 2))
        self.assertEqual(len(RECORDS.mo_latencies), 2)


class LoadgenRequestTests(SynchronousTestCase):
    def test_get_carries_the_body_as_query(self) -> None:
        target = _Target("http://127.0.0.1:13013/cgi-bin/sendsms", method="GET")
        self.assertEqual(
            target.request(b"a=1&b=2"),
            b"GET /cgi-bin/sendsms?a=1&b=2 HTTP/1.1\r\nHost: 127.0.0.1:13013\r\n\r\n",
        )

    def test_post_is_json_with_its_length(self) -> None:
        request = _Target("http://127.0.0.1:80/m/").request(b"{}")
        self.assertTrue(request.startswith(b"POST /m/ HTTP/1.1\r\n"))
        self.assertIn(b"Content-Type: application/json\r\n", request)
        self.assertTrue(request.endswith(b"Content-Length: 2\r\n\r\n{}"))


class ProcessTreeCpuTests(SynchronousTestCase):
    def test_a_process_without_children_counts_itself(self) -> None:
        self.assertNotIn(os.getpid(), descendants(os.getpid()))
        self.assertGreater(tree_cpu_seconds(os.getpid()), 0.0)

    def test_a_gone_process_counts_nothing(self) -> None:
        self.assertEqual(tree_cpu_seconds(2**22 + 1), 0.0)
