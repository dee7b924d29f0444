"""Flags, variables and layering generated from any attrs config class: a
field added to a config class gets its flag and variable with nothing else to
change."""

from __future__ import annotations

import argparse
from typing import Any

import attrs
from twisted.trial.unittest import SynchronousTestCase

from junebug.config_flags import ArgumentParser, add_config_flags, cli_layer
from junebug.config_layers import from_environment, merge
from junebug.errors import ConfigError


@attrs.frozen
class Section:
    host: str = attrs.field(default="h", metadata={"doc": "The host"})
    port: int = attrs.field(default=1, metadata={"doc": "The port"})


@attrs.frozen
class Sample:
    """Stands for a config class that has just been given new fields."""

    name: str | None = attrs.field(default=None, metadata={"doc": "A name"})
    exit_early: bool = attrs.field(default=False, metadata={"doc": "Exit early"})
    ratio: float = attrs.field(default=0.5, metadata={"doc": "A 100% ratio"})
    kinds: dict[str, str] = attrs.field(factory=dict, metadata={"doc": "Kinds"})
    options: dict[str, Any] = attrs.field(factory=dict, metadata={"doc": "Opts"})
    items: list[dict[str, Any]] = attrs.field(
        factory=list, metadata={"doc": "Items", "accumulate": True}
    )
    section: Section = attrs.field(factory=Section)
    extra: Section | None = attrs.field(default=None, metadata={"doc": "Extra"})


def parser() -> argparse.ArgumentParser:
    result = ArgumentParser(prog="sample", argument_default=argparse.SUPPRESS)
    add_config_flags(
        result,
        Sample,
        env_prefix="SAMPLE_",
        names={"section.host": ("-sh",)},
        skip={"extra.port"},
    )
    return result


def layer(argv: list[str]) -> dict[str, Any]:
    return cli_layer(parser().parse_args(argv))[1]


class GeneratedFlagsTests(SynchronousTestCase):
    def test_every_field_by_type(self) -> None:
        self.assertEqual(
            layer(
                [
                    "--name",
                    "n",
                    "--exit-early",
                    "--ratio",
                    "2",
                    "--kinds",
                    "a:x.Y",
                    "--kinds",
                    "b:p:q",
                    "--options",
                    "{a: 1}",
                    "--items",
                    '{"x": 1}',
                    "--items",
                    "{y: 2}",
                    "-sh",
                    "host",
                    "--section-port",
                    "5",
                    "--extra-host",
                    "e",
                ]
            ),
            {
                "name": "n",
                "exit_early": True,
                "ratio": 2.0,
                "kinds": {"a": "x.Y", "b": "p:q"},
                "options": {"a": 1},
                "items": [{"x": 1}, {"y": 2}],
                "section": {"host": "host", "port": 5},
                "extra": {"host": "e"},
            },
        )
        self.assertEqual(layer(["--exit-early", "no"]), {"exit_early": False})
        self.assertEqual(layer([]), {})

    def test_skipped_and_bad_values(self) -> None:
        for argv in (
            ["--extra-port", "1"],
            ["--exit-early", "maybe"],
            ["--section-port", "x"],
            ["--kinds", "no-colon"],
            ["--options", "[1]"],
        ):
            with self.assertRaises(SystemExit, msg=argv):
                layer(argv)

    def test_help(self) -> None:
        text = parser().format_help()
        self.assertIn("A 100% ratio (default: 0.5) [env SAMPLE_RATIO]", text)
        self.assertIn("[env SAMPLE_SECTION_HOST]", text)
        self.assertIn("Items [env SAMPLE_ITEMS] (repeatable)", text)

    def test_preferred_names_win_abbreviations(self) -> None:
        plain = ArgumentParser(prog="p")
        plain.add_argument("--amqp-host")
        plain.add_argument("--amqp-heartbeat")
        with self.assertRaises(SystemExit):
            plain.parse_args(["--amqp-h", "x"])
        preferring = ArgumentParser(prog="p", preferred=["--amqp-host"])
        preferring.add_argument("--amqp-host")
        preferring.add_argument("--amqp-heartbeat")
        self.assertEqual(preferring.parse_args(["--amqp-h", "x"]).amqp_host, "x")
        self.assertEqual(preferring.parse_args(["--amqp-he", "1"]).amqp_heartbeat, "1")


class LayersTests(SynchronousTestCase):
    def test_environment(self) -> None:
        self.assertEqual(
            from_environment(
                Sample,
                "SAMPLE_",
                {
                    "SAMPLE_NAME": "",
                    "SAMPLE_EXIT_EARLY": "yes",
                    "SAMPLE_RATIO": "1.5",
                    "SAMPLE_ITEMS": "[{a: 1}]",
                    "SAMPLE_SECTION_PORT": "7",
                    "SAMPLE_EXTRA_HOST": "x",
                    "OTHER_NAME": "ignored",
                },
            ),
            {
                "name": None,
                "exit_early": True,
                "ratio": 1.5,
                "items": [{"a": 1}],
                "section": {"port": 7},
                "extra": {"host": "x"},
            },
        )
        with self.assertRaises(ConfigError):
            from_environment(Sample, "SAMPLE_", {"SAMPLE_SECTION_PORT": "x"})

    def test_merge(self) -> None:
        merged = merge(
            Sample,
            {"section": {"host": "a"}, "items": [1], "kinds": {"a": "b"}},
            {"section": {"port": 2}, "items": [2], "kinds": {"c": "d"}},
            {"extra": {"host": "x"}, "unknown": 1},
            {"extra": None},
        )
        self.assertEqual(
            merged,
            {
                "section": {"host": "a", "port": 2},
                "items": [1, 2],
                "kinds": {"c": "d"},
                "extra": None,
                "unknown": 1,
            },
        )
        with self.assertRaises(ConfigError) as caught:
            merge(Sample, {"section": None})
        self.assertIn("config.section: expected a mapping", str(caught.exception))
