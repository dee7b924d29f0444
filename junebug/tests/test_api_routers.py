"""The routers API against an in-process Junebug with in-memory backends."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from twisted.internet import reactor, task
from twisted.trial.unittest import TestCase

from junebug.errors import InvalidRouterConfig, InvalidRouterDestinationConfig
from junebug.messages import Message, user_message
from junebug.routers.interface import Router, RouterDependencies
from junebug.stores import keys
from junebug.testing.api import ApiDriver
from junebug.testing.http_sink import HttpSink
from junebug.testing.polling import wait_until
from junebug.testing.stub_api import StubApi
from junebug.testing.transports import FakeTransport

MISSING = "11111111-1111-1111-1111-111111111111"


def errors(body: dict[str, Any]) -> list[dict[str, Any]]:
    result: list[dict[str, Any]] = body["result"]["errors"]
    return result


class RoutersApiBase(TestCase):
    """Driven through StubTreq on a fake clock, unless :meth:`driver` says
    otherwise."""

    api: StubApi | ApiDriver

    def driver(self) -> StubApi | ApiDriver:
        return StubApi()

    async def start(self, **overrides: Any) -> StubApi | ApiDriver:
        api = self.driver()
        self.addCleanup(api.stop)
        await api.start(**overrides)
        self.api = api
        return api

    async def channel(self, **props: Any) -> str:
        _, body, _ = await self.api.request(
            "POST", "/channels/", {"type": "fake", "config": {}, **props}
        )
        cid: str = body["result"]["id"]
        return cid

    async def router(self, cid: str, **props: Any) -> str:
        code, body, _ = await self.api.request(
            "POST",
            "/routers/",
            {"type": "from_address", "config": {"channel": cid}, **props},
        )
        self.assertEqual(code, 201, body)
        rid: str = body["result"]["id"]
        return rid

    async def destination(self, rid: str, **props: Any) -> str:
        code, body, _ = await self.api.request(
            "POST", f"/routers/{rid}/destinations/", props
        )
        self.assertEqual(code, 201, body)
        did: str = body["result"]["id"]
        return did

    def running_destinations(self, rid: str) -> list[dict[str, Any]]:
        assert self.api.junebug is not None and self.api.junebug.routers is not None
        instance = self.api.junebug.routers.running(rid)
        assert instance is not None
        return list(instance.destinations.values())


class RouterCrudTests(RoutersApiBase):
    async def test_list_create_get(self) -> None:
        """A router is created (201), listed sorted and found."""
        api = await self.start()
        code, body, _ = await api.request("GET", "/routers/")
        self.assertEqual(
            (code, body["description"], body["result"]), (200, "routers retrieved", [])
        )
        cid = await self.channel()
        code, body, _ = await api.request(
            "POST",
            "/routers/",
            {
                "type": "from_address",
                "label": "SMS longcode 12345",
                "config": {"channel": cid},
                "metadata": {"owner": 7},
            },
        )
        self.assertEqual((code, body["code"]), (201, "Created"))
        self.assertEqual(body["description"], "router created")
        router = body["result"]
        rid = router["id"]
        self.assertEqual(
            router,
            {
                "id": rid,
                "type": "from_address",
                "label": "SMS longcode 12345",
                "config": {"channel": cid},
                "metadata": {"owner": 7},
            },
        )
        code, body, _ = await api.request("GET", f"/routers/{rid}")
        self.assertEqual((code, body["description"]), (200, "router found"))
        self.assertEqual(body["result"], router)
        other = await self.router(await self.channel())
        _, body, _ = await api.request("GET", "/routers/")
        self.assertEqual(body["result"], sorted([rid, other]))

    async def test_schema_errors(self) -> None:
        """Bodies are checked against the schema first, listing every problem."""
        api = await self.start()
        code, body, _ = await api.request("POST", "/routers/", {})
        self.assertEqual((code, body["description"]), (400, "api usage error"))
        self.assertEqual(
            [(e["message"], e["schema_path"]) for e in errors(body)],
            [
                ("'config' is a required property", ["required"]),
                ("'type' is a required property", ["required"]),
            ],
        )
        code, body, _ = await api.request(
            "POST", "/routers/", {"type": "x", "config": {}, "extra": 1}
        )
        self.assertEqual(
            errors(body)[0]["message"],
            "Additional properties are not allowed ('extra' was unexpected)",
        )
        code, body, _ = await api.request("POST", "/routers/", raw=b"{")
        self.assertEqual((code, body["description"]), (400, "json decode error"))
        code, body, _ = await api.request("GET", "/routers")
        self.assertEqual(code, 308)
        self.assertTrue(errors(body)[0]["new_url"].endswith("/routers/"))

    async def test_invalid_type(self) -> None:
        """An unknown type lists the known ones (type is a plain string)."""
        api = await self.start()
        code, body, _ = await api.request(
            "POST", "/routers/", {"type": "nope", "config": {}}
        )
        self.assertEqual((code, body["description"]), (400, "invalid router type"))
        self.assertEqual(
            errors(body),
            [
                {
                    "type": "InvalidRouterType",
                    "message": "Invalid router type nope, must be one of: from_address",
                }
            ],
        )

    async def test_from_address_config_validation(self) -> None:
        """The original's validation messages, verbatim; nothing is saved."""
        api = await self.start()
        owned = await self.channel(mo_url="http://127.0.0.1:1/mo")
        free = await self.channel()
        rid = await self.router(free)
        cases = [
            ({}, "Missing required config field 'channel'"),
            ({"channel": "bad"}, "Field 'channel' is not a valid UUID"),
            ({"channel": MISSING}, f"Channel {MISSING} does not exist"),
            (
                {"channel": owned},
                f"Channel {owned} already has a destination specified",
            ),
            ({"channel": free}, f"Router {rid} is already routing channel {free}"),
            (
                {"channel": free.upper()},
                f"Router {rid} is already routing channel {free}",
            ),
        ]
        for config, message in cases:
            code, body, _ = await api.request(
                "POST", "/routers/", {"type": "from_address", "config": config}
            )
            self.assertEqual(
                (code, body["description"]), (400, "invalid router config"), config
            )
            self.assertEqual(
                errors(body), [{"type": "InvalidRouterConfig", "message": message}]
            )
        _, body, _ = await api.request("GET", "/routers/")
        self.assertEqual(body["result"], [rid])

    async def test_put_replaces(self) -> None:
        """PUT needs type and config, drops omitted label/metadata, may keep
        routing its own channel, and leaves the router alone when invalid."""
        api = await self.start()
        cid = await self.channel()
        rid = await self.router(cid, label="R", metadata={"a": 1})
        code, body, _ = await api.request("PUT", f"/routers/{rid}", {"label": "R3"})
        self.assertEqual(code, 400)
        self.assertEqual(
            [e["message"] for e in errors(body)],
            ["'config' is a required property", "'type' is a required property"],
        )
        code, body, _ = await api.request(
            "PUT",
            f"/routers/{rid}",
            {"type": "from_address", "config": {"channel": MISSING}},
        )
        self.assertEqual((code, body["description"]), (400, "invalid router config"))
        _, body, _ = await api.request("GET", f"/routers/{rid}")
        self.assertEqual(body["result"]["label"], "R")
        code, body, _ = await api.request(
            "PUT",
            f"/routers/{rid}",
            {"type": "from_address", "config": {"channel": cid}},
        )
        self.assertEqual((code, body["description"]), (200, "router updated"))
        self.assertEqual(
            body["result"],
            {"id": rid, "type": "from_address", "config": {"channel": cid}},
        )
        _, body, _ = await api.request("GET", f"/routers/{rid}")
        self.assertNotIn("label", body["result"])
        code, body, _ = await api.request(
            "PUT",
            "/routers/bad-router-id",
            {"type": "from_address", "config": {"channel": cid}},
        )
        self.assertEqual(code, 404)

    async def test_patch_merges(self) -> None:
        """PATCH keeps what it does not name; a new config is validated."""
        api = await self.start()
        cid = await self.channel()
        rid = await self.router(cid, label="R", metadata={"a": 1})
        code, body, _ = await api.request("PATCH", f"/routers/{rid}", {"label": "R2"})
        self.assertEqual((code, body["description"]), (200, "router updated"))
        self.assertEqual(
            body["result"],
            {
                "id": rid,
                "type": "from_address",
                "label": "R2",
                "config": {"channel": cid},
                "metadata": {"a": 1},
            },
        )
        code, body, _ = await api.request(
            "PATCH", f"/routers/{rid}", {"config": {"channel": "nope"}}
        )
        self.assertEqual(
            errors(body)[0]["message"], "Field 'channel' is not a valid UUID"
        )
        code, body, _ = await api.request("PATCH", f"/routers/{rid}", {"type": "nope"})
        self.assertEqual((code, body["description"]), (400, "invalid router type"))
        other = await self.channel()
        code, body, _ = await api.request(
            "PATCH", f"/routers/{rid}", {"config": {"channel": other}}
        )
        self.assertEqual(code, 200)
        assert api.junebug is not None and api.junebug.routers is not None
        instance: Any = api.junebug.routers.running(rid)
        self.assertEqual(instance.channel_id, other)

    async def test_delete_removes_router_and_destinations(self) -> None:
        """DELETE stops the router and removes its destinations' keys too."""
        api = await self.start()
        cid = await self.channel()
        rid = await self.router(cid)
        did = await self.destination(rid, config={"regular_expression": "^1"})
        code, body, _ = await api.request("DELETE", f"/routers/{rid}")
        self.assertEqual(
            (code, body["description"], body["result"]), (200, "router deleted", {})
        )
        assert api.junebug is not None and api.junebug.routers is not None
        self.assertIsNone(api.junebug.routers.running(rid))
        backend = api.junebug.backend
        for key in (
            keys.router(rid),
            keys.router_destinations(rid),
            keys.router_destination(rid, did),
        ):
            self.assertFalse(await backend.exists(key), key)
        code, body, _ = await api.request("DELETE", f"/routers/{rid}")
        self.assertEqual(code, 404)
        # The channel can be routed again.
        await self.router(cid)

    async def test_not_found(self) -> None:
        """Every router endpoint answers 404 for an unknown router."""
        api = await self.start()
        message = "Router with ID bad-router-id cannot be found"
        base = "/routers/bad-router-id"
        for method, path, body in [
            ("GET", base, None),
            ("PATCH", base, {}),
            ("DELETE", base, None),
            ("GET", base + "/logs", None),
            ("GET", base + "/destinations/", None),
            ("POST", base + "/destinations/", {"config": {}}),
            ("GET", base + "/destinations/d", None),
            ("PUT", base + "/destinations/d", {"config": {}}),
            ("PATCH", base + "/destinations/d", {}),
            ("DELETE", base + "/destinations/d", None),
            ("GET", base + "/destinations/d/logs", None),
            ("POST", base + "/destinations/d/messages/", {"content": "x", "to": "1"}),
            ("GET", base + "/destinations/d/messages/m", None),
        ]:
            code, result, _ = await api.request(method, path, body)
            self.assertEqual((code, result["description"]), (404, "router not found"))
            self.assertEqual(
                errors(result), [{"type": "RouterNotFound", "message": message}]
            )


class RouterLogsTests(RoutersApiBase):
    """The logs endpoints read files in Twisted's thread pool: a real reactor."""

    def driver(self) -> StubApi | ApiDriver:
        return ApiDriver(reactor)

    async def test_router_logs(self) -> None:
        """The router's own log file is served, newest first."""
        api = await self.start()
        rid = await self.router(await self.channel())
        await self.destination(rid, config={"regular_expression": "x"})
        code, body, _ = await api.request("GET", f"/routers/{rid}/logs?n=1")
        self.assertEqual((code, body["description"]), (200, "logs retrieved"))
        self.assertEqual(len(body["result"]), 1)
        self.assertEqual(body["result"][0]["logger"], rid)
        self.assertIn("started with 1 destination", body["result"][0]["message"])
        code, body, _ = await api.request("GET", f"/routers/{rid}/logs?n=abc")
        self.assertEqual(code, 400)


class DestinationCrudTests(RoutersApiBase):
    async def test_create_list_get(self) -> None:
        """A destination is created (201) with every documented key, listed,
        found, and the router is restarted with it."""
        api = await self.start()
        rid = await self.router(await self.channel())
        code, body, _ = await api.request("GET", f"/routers/{rid}/destinations/")
        self.assertEqual(
            (code, body["description"], body["result"]),
            (200, "destinations retrieved", []),
        )
        props = {
            "label": "*123*4567*1# subcode",
            "config": {"regular_expression": r"^\*123\*4567\*1#$"},
            "metadata": {"owner": 7},
            "mo_url": "https://www.example.org/messages",
            "mo_url_token": "my-secret-token",
            "amqp_queue": "subcode_1_queue",
            "character_limit": 140,
        }
        code, body, _ = await api.request(
            "POST", f"/routers/{rid}/destinations/", props
        )
        self.assertEqual((code, body["description"]), (201, "destination created"))
        destination = body["result"]
        did = destination["id"]
        self.assertEqual(destination, {**props, "mo_url_token": "***", "id": did})
        code, body, _ = await api.request("GET", f"/routers/{rid}/destinations/{did}")
        self.assertEqual((code, body["description"]), (200, "destination found"))
        self.assertEqual(body["result"], destination)
        _, body, _ = await api.request("GET", f"/routers/{rid}/destinations/")
        self.assertEqual(body["result"], [did])
        self.assertEqual(self.running_destinations(rid), [{**props, "id": did}])

    async def test_secrets_masked_and_kept(self) -> None:
        """A destination's token and URL password are masked in answers unless
        asked for; sending the masked values back keeps the stored ones."""
        api = await self.start()
        rid = await self.router(await self.channel())
        props = {
            "config": {"regular_expression": "^1"},
            "mo_url": "https://user:pw@example.org/mo",
            "mo_url_token": "my-secret-token",
        }
        code, body, _ = await api.request(
            "POST", f"/routers/{rid}/destinations/", props
        )
        shown = body["result"]
        did = shown["id"]
        self.assertEqual(
            (shown["mo_url_token"], shown["mo_url"]),
            ("***", "https://user:***@example.org/mo"),
        )
        path = f"/routers/{rid}/destinations/{did}"
        code, body, _ = await api.request("GET", path + "?show_secrets=true")
        self.assertEqual(body["result"]["mo_url_token"], "my-secret-token")
        for method in ("PUT", "PATCH"):
            sent = {k: v for k, v in shown.items() if k != "id"}
            code, body, _ = await api.request(method, path, sent)
            self.assertEqual(code, 200, body)
            self.assertEqual(body["result"]["mo_url_token"], "***")
            [running] = self.running_destinations(rid)
            self.assertEqual(
                (running["mo_url_token"], running["mo_url"]),
                ("my-secret-token", "https://user:pw@example.org/mo"),
            )

    async def test_validation(self) -> None:
        """Destination configs are checked by the router type; the schema first."""
        api = await self.start()
        rid = await self.router(await self.channel())
        path = f"/routers/{rid}/destinations/"
        code, body, _ = await api.request("POST", path, {"label": "x"})
        self.assertEqual(errors(body)[0]["message"], "'config' is a required property")
        code, body, _ = await api.request(
            "POST", path, {"config": {}, "character_limit": -1, "mo_url": 5}
        )
        self.assertEqual(
            [e["message"] for e in errors(body)],
            ["-1 is less than the minimum of 0", "5 is not of type 'string'"],
        )
        for config, message in [
            ({}, "Missing required config field 'regular_expression'"),
            (
                {"regular_expression": "("},
                "Field 'regular_expression' is not a valid regular expression: "
                "missing ), unterminated subpattern at position 0",
            ),
            (
                {"regular_expression": "x", "default": "yes"},
                "Field 'default' is not a boolean",
            ),
        ]:
            code, body, _ = await api.request("POST", path, {"config": config})
            self.assertEqual(
                (code, body["description"]),
                (400, "invalid router destination config"),
            )
            self.assertEqual(
                errors(body),
                [{"type": "InvalidRouterDestinationConfig", "message": message}],
            )
        _, body, _ = await api.request("GET", path)
        self.assertEqual(body["result"], [])

    async def test_amqp_queue_refused_as_rabbitmq_would(self) -> None:
        """A destination amqp_queue RabbitMQ would refuse is a 400; nothing stored."""
        api = await self.start()
        rid = await self.router(await self.channel())
        path = f"/routers/{rid}/destinations/"
        did = await self.destination(rid, config={"regular_expression": "^1"})
        for method, target in (
            ("POST", path),
            ("PUT", f"{path}{did}"),
            ("PATCH", f"{path}{did}"),
        ):
            for name in ("x" * 300, "amq.app"):
                code, body, _ = await api.request(
                    method,
                    target,
                    {"config": {"regular_expression": "^2"}, "amqp_queue": name},
                )
                self.assertEqual(code, 400, (method, name))
                self.assertEqual(
                    errors(body)[0]["schema_path"], ["properties", "amqp_queue"]
                )
        _, body, _ = await api.request("GET", path)
        self.assertEqual(body["result"], [did])
        _, body, _ = await api.request("GET", f"{path}{did}")
        self.assertNotIn("amqp_queue", body["result"])

    async def test_at_most_one_default(self) -> None:
        """Only one destination may be the default; a default needs no regex."""
        api = await self.start()
        rid = await self.router(await self.channel())
        path = f"/routers/{rid}/destinations/"
        first = await self.destination(rid, config={"default": True})
        code, body, _ = await api.request(
            "POST", path, {"config": {"regular_expression": "x", "default": True}}
        )
        self.assertEqual(code, 400)
        self.assertEqual(
            errors(body)[0]["message"],
            f"Destination {first} is already the default destination of router "
            f"{rid}; only one destination may be the default",
        )
        other = await self.destination(rid, config={"regular_expression": "x"})
        code, body, _ = await api.request(
            "PATCH", f"{path}{other}", {"config": {"default": True}}
        )
        self.assertEqual(code, 400)
        # The default itself may be replaced, and then another can take over.
        code, body, _ = await api.request(
            "PUT",
            f"{path}{first}",
            {"config": {"default": True, "regular_expression": "y"}},
        )
        self.assertEqual(code, 200, body)
        await api.request("DELETE", f"{path}{first}")
        code, body, _ = await api.request(
            "PATCH", f"{path}{other}", {"config": {"default": True}}
        )
        self.assertEqual(code, 200, body)

    async def test_put_patch_delete(self) -> None:
        """PUT replaces the destination, PATCH merges, DELETE removes; the
        running router follows every change."""
        api = await self.start()
        rid = await self.router(await self.channel())
        did = await self.destination(
            rid, label="D", config={"regular_expression": "^1"}, mo_url="http://a/"
        )
        path = f"/routers/{rid}/destinations/{did}"
        code, body, _ = await api.request("PUT", path, {"label": "x"})
        self.assertEqual(errors(body)[0]["message"], "'config' is a required property")
        code, body, _ = await api.request(
            "PUT", path, {"config": {"regular_expression": "("}}
        )
        self.assertEqual(code, 400)
        code, body, _ = await api.request(
            "PUT", path, {"config": {"regular_expression": "^2"}}
        )
        self.assertEqual((code, body["description"]), (200, "destination updated"))
        self.assertEqual(
            body["result"], {"id": did, "config": {"regular_expression": "^2"}}
        )
        self.assertEqual(self.running_destinations(rid), [body["result"]])
        code, body, _ = await api.request(
            "PATCH", path, {"metadata": {"foo": "bar"}, "character_limit": 7}
        )
        self.assertEqual((code, body["description"]), (200, "destination updated"))
        self.assertEqual(
            body["result"],
            {
                "id": did,
                "config": {"regular_expression": "^2"},
                "metadata": {"foo": "bar"},
                "character_limit": 7,
            },
        )
        self.assertEqual(self.running_destinations(rid), [body["result"]])
        code, body, _ = await api.request("DELETE", path)
        self.assertEqual(
            (code, body["description"], body["result"]),
            (200, "destination deleted", {}),
        )
        self.assertEqual(self.running_destinations(rid), [])
        code, body, _ = await api.request("GET", path)
        self.assertEqual((code, body["description"]), (404, "destination not found"))
        self.assertEqual(
            errors(body)[0]["message"],
            f"Cannot find destination with ID {did} for router {rid}",
        )

    async def test_destination_not_found(self) -> None:
        """Every destination endpoint answers 404 for an unknown destination."""
        api = await self.start()
        rid = await self.router(await self.channel())
        base = f"/routers/{rid}/destinations/bad-destination-id"
        for method, path, body in [
            ("GET", base, None),
            ("PUT", base, {"config": {"regular_expression": "x"}}),
            ("PATCH", base, {}),
            ("DELETE", base, None),
            ("GET", base + "/logs", None),
            ("POST", base + "/messages/", {"content": "x", "to": "1"}),
            ("GET", base + "/messages/m", None),
        ]:
            code, result, _ = await api.request(method, path, body)
            self.assertEqual(
                (code, result["description"]), (404, "destination not found"), path
            )
            self.assertEqual(
                errors(result)[0]["message"],
                f"Cannot find destination with ID bad-destination-id for router {rid}",
            )

    async def test_type_change_revalidates_destinations(self) -> None:
        """Changing a router's type checks its destinations against the new type."""
        api = await self.start(
            routers={"strict": "junebug.tests.test_api_routers.StrictRouter"}
        )
        cid = await self.channel()
        rid = await self.router(cid)
        did = await self.destination(rid, config={"regular_expression": "x"})
        code, body, _ = await api.request(
            "PATCH", f"/routers/{rid}", {"type": "strict", "config": {"test": "pass"}}
        )
        self.assertEqual(
            (code, body["description"]), (400, "invalid router destination config")
        )
        self.assertEqual(
            errors(body)[0]["message"], f"Destination {did}: target must be valid"
        )
        code, body, _ = await api.request(
            "POST", "/routers/", {"type": "strict", "config": {}}
        )
        self.assertEqual(errors(body)[0]["message"], "test must be pass")
        code, body, _ = await api.request(
            "POST", "/routers/", {"type": "nope", "config": {}}
        )
        self.assertEqual(
            errors(body)[0]["message"],
            "Invalid router type nope, must be one of: from_address, strict",
        )


class RouterTypeTests(RoutersApiBase):
    async def test_replace_routers(self) -> None:
        """replace_routers drops the built-in types for the configured ones."""
        api = await self.start(
            routers={"strict": "junebug.tests.test_api_routers.StrictRouter"},
            replace_routers=True,
        )
        code, body, _ = await api.request(
            "POST", "/routers/", {"type": "from_address", "config": {}}
        )
        self.assertEqual(
            errors(body)[0]["message"],
            "Invalid router type from_address, must be one of: strict",
        )
        code, body, _ = await api.request(
            "POST", "/routers/", {"type": "strict", "config": {"test": "pass"}}
        )
        self.assertEqual(code, 201, body)
        rid = body["result"]["id"]
        code, body, _ = await api.request(
            "POST", f"/routers/{rid}/destinations/", {"config": {"target": "valid"}}
        )
        self.assertEqual(code, 201, body)


class RoutingTests(RoutersApiBase):
    """Messages and events through a from_address router, delivered over
    real HTTP to a sink (a real reactor and ports)."""

    def driver(self) -> StubApi | ApiDriver:
        return ApiDriver(reactor)

    async def setup(self, **overrides: Any) -> tuple[str, str, FakeTransport]:
        sink = HttpSink(reactor)
        self.sink_base = await sink.start()
        self.addCleanup(sink.stop)
        self.sink = sink
        await self.start(**overrides)
        cid = await self.channel()
        transport = self.api.transport(cid)
        rid = await self.router(cid)
        return cid, rid, transport

    async def test_mo_routed_by_to_addr_with_default(self) -> None:
        """MO goes to every destination whose regex matches to_addr (with the
        token); the default only gets what matches nothing."""
        cid, rid, transport = await self.setup()
        base = self.sink_base
        one = await self.destination(
            rid,
            config={"regular_expression": r"^\*120\*1#$"},
            mo_url=base + "/one",
            mo_url_token="tok1",
        )
        ones = await self.destination(
            rid, config={"regular_expression": r"^\*120\*1"}, mo_url=base + "/ones"
        )
        other = await self.destination(
            rid, config={"default": True}, mo_url=base + "/default"
        )
        transport = self.api.transport(cid)
        msg = await transport.receive("a", to_addr="*120*1#", from_addr="+27821")
        first, second = await self.sink.next(), await self.sink.next()
        by_path = {first.path: first, second.path: second}
        self.assertEqual(set(by_path), {"/one", "/ones"})
        self.assertEqual(by_path["/one"].headers["authorization"], "Token tok1")
        self.assertNotIn("authorization", by_path["/ones"].headers)
        body = by_path["/one"].body
        self.assertEqual(body["message_id"], msg["message_id"])
        self.assertEqual(body["channel_id"], cid)
        self.assertEqual((body["to"], body["from"]), ("*120*1#", "+27821"))
        await transport.receive("b", to_addr="*999#", from_addr="*120*1#")
        received = await self.sink.next()
        self.assertEqual((received.path, received.body["content"]), ("/default", "b"))
        await transport.receive("c", to_addr=None)
        received = await self.sink.next()
        self.assertEqual((received.path, received.body["content"]), ("/default", "c"))
        assert self.api.junebug is not None
        messages = self.api.junebug.routers.deps.messages  # type: ignore[union-attr]
        self.assertIsNotNone(await messages.load_inbound(one, msg["message_id"]))
        self.assertIsNotNone(await messages.load_inbound(ones, msg["message_id"]))
        self.assertIsNone(await messages.load_inbound(other, msg["message_id"]))
        self.assertIsNone(await messages.load_inbound(cid, msg["message_id"]))

    async def test_unmatched_dropped_without_default(self) -> None:
        """Without a default, unmatched MO is logged and dropped."""
        cid, rid, _t = await self.setup()
        await self.destination(
            rid, config={"regular_expression": "^1"}, mo_url=self.sink_base + "/one"
        )
        transport = self.api.transport(cid)
        await transport.receive("x", to_addr="2")
        await transport.receive(None, to_addr=None)
        await transport.receive("y", to_addr="1")
        received = await self.sink.next()
        self.assertEqual(received.body["content"], "y")

        async def logged() -> list[str]:
            _, body, _ = await self.api.request("GET", f"/routers/{rid}/logs")
            return [entry["message"] for entry in body["result"]]

        lines = await logged()
        self.assertTrue(any("No destination matches to address 2" in m for m in lines))
        self.assertTrue(any("Message has no to address" in m for m in lines))

    async def test_send_through_destination(self) -> None:
        """A send via a destination reaches the channel (which needs no
        mo_url), its events reach the event_url (with the destination as
        channel_id) and the destination's message status."""
        cid, rid, _t = await self.setup()
        did = await self.destination(rid, config={"regular_expression": "^1"})
        transport = self.api.transport(cid)
        code, body, _ = await self.api.request(
            "POST",
            f"/routers/{rid}/destinations/{did}/messages/",
            {
                "to": "+1234",
                "from": None,
                "content": "foo",
                "event_url": self.sink_base + "/ev",
                "event_auth_token": "etok",
            },
        )
        self.assertEqual((code, body["description"]), (201, "message submitted"))
        view = body["result"]
        self.assertEqual(view["channel_id"], cid)
        self.assertNotIn("event_url", view)
        mid = view["message_id"]
        await wait_until(lambda: transport.outbound)
        self.assertEqual(transport.outbound[0]["message_id"], mid)
        self.assertEqual(transport.outbound[0]["transport_name"], cid)
        event = await self.sink.next()
        self.assertEqual(event.path, "/ev")
        self.assertEqual(event.headers["authorization"], "Token etok")
        self.assertEqual(event.body["event_type"], "submitted")
        self.assertEqual(event.body["message_id"], mid)
        self.assertEqual(event.body["channel_id"], did)
        code, body, _ = await self.api.request(
            "GET", f"/routers/{rid}/destinations/{did}/messages/{mid}"
        )
        self.assertEqual((code, body["description"]), (200, "message status"))
        self.assertEqual(body["result"]["last_event_type"], "submitted")
        self.assertEqual(body["result"]["events"][0]["channel_id"], did)
        code, body, _ = await self.api.request(
            "GET", f"/routers/{rid}/destinations/{did}/messages/unknown"
        )
        self.assertEqual(body["result"]["events"], [])
        # The channel's own endpoints still refuse: the router owns it.
        for method, path, payload in [
            ("POST", f"/channels/{cid}/messages/", {"to": "+1", "content": "x"}),
            ("GET", f"/channels/{cid}/messages/{mid}", None),
        ]:
            code, body, _ = await self.api.request(method, path, payload)
            self.assertEqual(code, 400)
            self.assertEqual(
                errors(body)[0]["message"],
                'This channel has no "mo_url" or "amqp_queue"',
            )

    async def test_events_go_to_sending_destination(self) -> None:
        """Events reach the destination a message was sent through, even when
        another destination's regex matches its from address better."""
        _cid, rid, _t = await self.setup()
        first = await self.destination(rid, config={"regular_expression": "."})
        second = await self.destination(rid, config={"regular_expression": "^x"})
        for did in (first, second):
            _, _body, _ = await self.api.request(
                "POST",
                f"/routers/{rid}/destinations/{did}/messages/",
                {
                    "to": "+1",
                    "from": "x1",
                    "content": did,
                    "event_url": f"{self.sink_base}/{did}",
                },
            )
        paths = {(await self.sink.next()).path for _ in range(2)}
        self.assertEqual(paths, {f"/{first}", f"/{second}"})

    async def test_reply_through_destination(self) -> None:
        """A reply finds the MO stored under the destination and answers it."""
        cid, rid, _t = await self.setup()
        did = await self.destination(
            rid, config={"regular_expression": "^100$"}, mo_url=self.sink_base + "/mo"
        )
        transport = self.api.transport(cid)
        msg = await transport.receive("hi", to_addr="100", from_addr="+2782")
        await self.sink.next()
        code, body, _ = await self.api.request(
            "POST",
            f"/routers/{rid}/destinations/{did}/messages/",
            {"reply_to": msg["message_id"], "content": "hello"},
        )
        self.assertEqual(code, 201, body)
        self.assertEqual(
            (body["result"]["to"], body["result"]["from"]), ("+2782", "100")
        )
        self.assertEqual(body["result"]["reply_to"], msg["message_id"])
        await wait_until(lambda: transport.outbound)
        self.assertEqual(transport.outbound[0]["in_reply_to"], msg["message_id"])
        code, body, _ = await self.api.request(
            "POST",
            f"/routers/{rid}/destinations/{did}/messages/",
            {"reply_to": "nope", "content": "hello"},
        )
        self.assertEqual((code, body["description"]), (400, "message not found"))

    async def test_character_limits(self) -> None:
        """Both the destination's and the channel's character_limit apply."""
        cid, rid, _t = await self.setup()
        did = await self.destination(
            rid, config={"regular_expression": "x"}, character_limit=5
        )
        path = f"/routers/{rid}/destinations/{did}/messages/"
        code, body, _ = await self.api.request(
            "POST", path, {"to": "+1", "content": "123456"}
        )
        self.assertEqual((code, body["description"]), (400, "message too long"))
        self.assertEqual(
            errors(body)[0]["message"],
            "Message content '123456' is of length 6, which is greater than the "
            "character limit of 5",
        )
        code, _, _ = await self.api.request(
            "POST", path, {"to": "+1", "content": "12345"}
        )
        self.assertEqual(code, 201)
        await self.api.request("POST", f"/channels/{cid}", {"character_limit": 3})
        code, body, _ = await self.api.request(
            "POST", path, {"to": "+1", "content": "1234"}
        )
        self.assertEqual(code, 400)
        self.assertIn("character limit of 3", errors(body)[0]["message"])

    async def test_destination_amqp_queue(self) -> None:
        """MO and events are copied to <queue>.inbound/.event; MT published to
        <queue>.outbound reaches the channel and its events come back."""
        cid, rid, _t = await self.setup()
        did = await self.destination(
            rid, config={"regular_expression": "^1"}, amqp_queue="app1"
        )
        transport = self.api.transport(cid)
        assert self.api.junebug is not None
        broker = self.api.junebug.broker
        inbound: list[Message] = []
        events: list[Message] = []

        async def on_inbound(msg: Message) -> None:
            inbound.append(msg)

        async def on_event(msg: Message) -> None:
            events.append(msg)

        for consumer in (
            await broker.consume("app1.inbound", on_inbound),
            await broker.consume("app1.event", on_event),
        ):
            self.addCleanup(consumer.stop)
        mo = await transport.receive("hi", to_addr="1")
        await wait_until(lambda: inbound)
        self.assertEqual(inbound[0]["message_id"], mo["message_id"])
        mt = user_message(
            to_addr="+27", from_addr="1", transport_name=cid, content="from app"
        )
        await broker.publish("app1.outbound", mt)
        await wait_until(lambda: transport.outbound)
        self.assertEqual(transport.outbound[0]["message_id"], mt["message_id"])
        await wait_until(lambda: events)
        self.assertEqual(events[0]["user_message_id"], mt["message_id"])
        _code, body, _ = await self.api.request(
            "GET", f"/routers/{rid}/destinations/{did}/messages/{mt['message_id']}"
        )
        self.assertEqual(body["result"]["last_event_type"], "submitted")

    async def test_destination_outbound_key(self) -> None:
        """An MT published to <did>.outbound (the original's key) reaches the
        destination's channel; the queue is declared, so nothing is dropped."""
        cid, rid, _t = await self.setup()
        did = await self.destination(rid, config={"regular_expression": "^1"})
        transport = self.api.transport(cid)
        assert self.api.junebug is not None
        broker = self.api.junebug.broker
        self.assertTrue(broker.has_queue(f"{did}.outbound"))
        mt = user_message(
            to_addr="+27", from_addr="1", transport_name=cid, content="via did"
        )
        await broker.publish(f"{did}.outbound", mt)
        await wait_until(lambda: transport.outbound)
        self.assertEqual(transport.outbound[0]["message_id"], mt["message_id"])

    async def test_destination_logs(self) -> None:
        """A destination's delivery problems land in its own log (and the router's)."""
        cid, rid, _t = await self.setup()
        self.sink.response_code = 500
        did = await self.destination(
            rid, config={"regular_expression": "^1"}, mo_url=self.sink_base + "/mo"
        )
        transport = self.api.transport(cid)
        await transport.receive("hi", to_addr="1")
        await self.sink.next()

        async def messages(path: str) -> list[str]:
            _, body, _ = await self.api.request("GET", path)
            return [entry["message"] for entry in body["result"]]

        async def logged() -> bool:
            lines = await messages(f"/routers/{rid}/destinations/{did}/logs")
            return any("HTTP 500" in line for line in lines)

        for _ in range(100):
            if await logged():
                break
            await task.deferLater(reactor, 0.02, lambda: None)
        self.assertTrue(await logged())
        router_lines = await messages(f"/routers/{rid}/logs")
        self.assertTrue(any("HTTP 500" in line for line in router_lines))

    async def test_channel_deleted_under_router(self) -> None:
        """Deleting a routed channel leaves the router; sends answer 404 and
        the router cannot be re-validated against the missing channel."""
        cid, rid, _t = await self.setup()
        did = await self.destination(rid, config={"regular_expression": "x"})
        await self.api.request("DELETE", f"/channels/{cid}")
        code, body, _ = await self.api.request(
            "POST",
            f"/routers/{rid}/destinations/{did}/messages/",
            {"to": "+1", "content": "x"},
        )
        self.assertEqual((code, body["description"]), (404, "channel not found"))
        code, body, _ = await self.api.request("GET", f"/routers/{rid}")
        self.assertEqual(code, 200)
        code, body, _ = await self.api.request("PATCH", f"/routers/{rid}", {})
        self.assertEqual(errors(body)[0]["message"], f"Channel {cid} does not exist")
        code, _, _ = await self.api.request("DELETE", f"/routers/{rid}")
        self.assertEqual(code, 200)

    async def test_health_lists_destination_queues(self) -> None:
        """/health checks every destination's queues after the channels'."""
        _cid, rid, _t = await self.setup()
        did = await self.destination(rid, config={"regular_expression": "x"})
        assert self.api.junebug is not None and self.api.junebug.routers is not None
        self.assertEqual(await self.api.junebug.routers.destination_ids(), [did])


class StrictRouter(Router):
    """The original's test router type: config ``test`` must be ``pass``,
    destination config ``target`` must be ``valid``."""

    @classmethod
    async def validate_router_config(
        cls, deps: RouterDependencies, config: dict[str, Any], router_id: str | None
    ) -> None:
        if config.get("test") != "pass":
            raise InvalidRouterConfig("test must be pass")

    @classmethod
    async def validate_destination_config(
        cls,
        deps: RouterDependencies,
        config: dict[str, Any],
        *,
        router_id: str,
        others: Sequence[dict[str, Any]],
    ) -> None:
        if config.get("target") != "valid":
            raise InvalidRouterDestinationConfig("target must be valid")

    def get_destination_channel(self, destination_id: str, body: Any) -> str:
        return str(self.config.get("channel"))
