"""Secret config fields are marked on the transports' config classes (#12.8)."""

from __future__ import annotations

from typing import Any

import attrs
from twisted.trial.unittest import SynchronousTestCase

from junebug.redaction import PLACEHOLDER, SECRET_KEY, is_secret, redact_config
from junebug.transports.http.config import AuthConfig, HttpConfig
from junebug.transports.registry import TransportRegistry
from junebug.transports.smpp.config import SmppConfig
from junebug.transports.xmpp.config import XmppConfig

HTTP_CONFIG: dict[str, Any] = {
    "send_url": "https://user:urlpw@sms.example/send",
    "headers": {"Authorization": "Bearer hdr-secret", "X-Partner": "p-secret"},
    "auth": {"type": "header", "header": "X-Api-Key", "value": "auth-secret"},
    "body_template": {"to": "{to}", "passwd": "tpl-secret", "api_key": "k"},
    "webhook_token": "hook-secret",
    "web_password": "web-secret",
    "web_username": "ops",
    "provider": "acme",
}


class RedactConfigTests(SynchronousTestCase):
    def test_http_channel_config(self) -> None:
        """Marked fields (auth.value, every header value, webhook_token,
        web_password) are hidden; free-form dicts by key name; URL passwords."""
        shown = redact_config(HTTP_CONFIG, HttpConfig)
        self.assertEqual(
            shown,
            {
                "send_url": "https://user:***@sms.example/send",
                "headers": {"Authorization": PLACEHOLDER, "X-Partner": PLACEHOLDER},
                "auth": {"type": "header", "header": "X-Api-Key", "value": "***"},
                "body_template": {"to": "{to}", "passwd": "***", "api_key": "***"},
                "webhook_token": PLACEHOLDER,
                "web_password": PLACEHOLDER,
                "web_username": "ops",
                "provider": "acme",
            },
        )
        self.assertEqual(HTTP_CONFIG["auth"]["value"], "auth-secret")

    def test_unknown_keys_and_types_fall_back_to_key_names(self) -> None:
        data = {"Authorization": "x", "passwd": "y", "pwd": "z", "name": "n"}
        expected = {"Authorization": "***", "passwd": "***", "pwd": "***", "name": "n"}
        self.assertEqual(redact_config(data, None), expected)
        self.assertEqual(redact_config(data, SmppConfig), expected)

    def test_unset_secrets_stay_unset(self) -> None:
        shown = redact_config({"password": "", "web_password": None}, HttpConfig)
        self.assertEqual(shown, {"password": "", "web_password": None})

    def test_secret_fields_never_in_repr(self) -> None:
        """A config object that is logged or printed hides its secrets."""
        auth = AuthConfig(type="token", token="tok-secret")
        xmpp = XmppConfig(username="bot@example.org", password="xmpp-secret")
        http = HttpConfig(
            send_url="http://h/s", headers={"Authorization": "hdr-secret"}, auth=auth
        )
        for config, secret in (
            (auth, "tok-secret"),
            (xmpp, "xmpp-secret"),
            (http, "hdr-secret"),
            (http, "tok-secret"),
        ):
            self.assertNotIn(secret, repr(config))
            self.assertIn("***", repr(config))

    def test_fields_named_like_secrets_are_marked(self) -> None:
        """Every built-in transport field whose name says secret is marked,
        so the classes, not the key-name rule, decide."""
        registry = TransportRegistry()
        unmarked = []
        for channel_type in registry.types():
            cls = registry.resolve(channel_type).CONFIG_CLASS
            for field in attrs.fields(cls):
                looks_secret = bool(SECRET_KEY.search(field.name))
                # ``auth`` holds an AuthConfig, whose own fields are marked.
                if looks_secret and not is_secret(field) and field.name != "auth":
                    unmarked.append(f"{channel_type}.{field.name}")
        self.assertEqual(unmarked, [])
        for cls, name in (
            (AuthConfig, "password"),
            (AuthConfig, "token"),
            (AuthConfig, "value"),
            (HttpConfig, "headers"),
            (SmppConfig, "password"),
        ):
            self.assertTrue(is_secret(attrs.fields_dict(cls)[name]), name)
