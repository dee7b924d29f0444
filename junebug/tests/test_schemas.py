"""The fast acceptance check of request schemas never lets through a body
that jsonschema would refuse (hypothesis, against every schema of the API)."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from jsonschema import Draft4Validator
from twisted.trial.unittest import TestCase

from junebug.api import schemas
from junebug.api.schemas import MESSAGE_SEND, _quick_check

SCHEMAS = {
    name: value
    for name, value in vars(schemas).items()
    if name.isupper() and isinstance(value, dict) and value.get("type") == "object"
}

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-3, max_value=3),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=3),
)
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=2)
        | st.dictionaries(st.text(max_size=3), inner, max_size=2)
    ),
    max_leaves=4,
)


def bodies(schema: dict[str, Any]) -> st.SearchStrategy[Any]:
    names = [*sorted(schema.get("properties", {})), "other"]
    return st.one_of(
        values,
        st.dictionaries(st.sampled_from(names), values, max_size=len(names)),
    )


class QuickCheckTests(TestCase):
    def test_every_flat_schema_has_a_quick_check(self) -> None:
        self.assertIn("MESSAGE_SEND", SCHEMAS)
        self.assertIsNotNone(_quick_check(MESSAGE_SEND))

    @settings(max_examples=300, deadline=None)
    @given(st.data())
    def test_quick_yes_means_jsonschema_yes(self, data: st.DataObject) -> None:
        name = data.draw(st.sampled_from(sorted(SCHEMAS)))
        schema = SCHEMAS[name]
        check = _quick_check(schema)
        if check is None:
            return
        body = data.draw(bodies(schema))
        if check(body):
            errors = list(Draft4Validator(schema).iter_errors(body))
            self.assertEqual(errors, [], (name, body))

    def test_the_usual_message_is_quick(self) -> None:
        check = _quick_check(MESSAGE_SEND)
        assert check is not None
        self.assertTrue(
            check({"to": "+27", "from": None, "content": "hi", "channel_data": {}})
        )
        self.assertFalse(check({"to": "+27"}))  # content is required
        self.assertFalse(check({"content": "hi", "extra": 1}))
        self.assertFalse(check({"content": "hi", "priority": 1.0}))  # not judged

    def test_every_schema_can_be_asked(self) -> None:
        # A property with an enum but no type (mo_format) leaves the schema
        # to jsonschema instead of failing to build the check.
        for name, schema in SCHEMAS.items():
            with self.subTest(name):
                _quick_check(schema)
        self.assertIsNone(_quick_check(schemas.CHANNEL_CREATE))
