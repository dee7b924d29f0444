"""YAML in configuration: alias bombs, self-referring aliases and deep nesting
are refused with a ConfigError (exit 2 from the commands), in bounded memory;
ordinary anchors and aliases still work."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

from twisted.trial.unittest import SynchronousTestCase

from junebug.config import load_config
from junebug.errors import ConfigError
from junebug.message_api.config import load_config as load_message_api_config

#: Nine levels of nine aliases: 9**9 (387 million) strings once expanded.
LAUGHS = "\n".join(
    [
        'l0: &l0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]',
        *(f"l{n}: &l{n} [{', '.join([f'*l{n - 1}'] * 9)}]" for n in range(1, 9)),
    ]
)
#: A bomb where jb uses the value (the label of a channel created at start-up).
BOMB = (
    LAUGHS + "\nstartup_channels:\n  - {id: x, type: telnet, label: *l8, config: {}}\n"
)
#: The same bomb as one value (an environment variable or a flag).
INLINE_BOMB = "{" + LAUGHS.replace("\n", ", ") + ", x: *l8}"

MESSAGE_API_REQUIRED = {
    "JUNEBUG_MESSAGE_API_CONNECTOR_NAME": "c",
    "JUNEBUG_MESSAGE_API_HTTP_BIND": "127.0.0.1:0",
    "JUNEBUG_MESSAGE_API_MO_MESSAGE_URL": "http://127.0.0.1:1/mo",
}

#: Address space allowed to a ``jb`` run refusing a bomb (it needs ~300 MiB).
MEMORY_LIMIT = 512 * 1024 * 1024


def write(text: str) -> str:
    with tempfile.NamedTemporaryFile(
        "w", suffix=".yaml", delete=False, encoding="utf-8"
    ) as handle:
        handle.write(text)
    return handle.name


#: Runs ``jb`` (``sys.argv[1:]``) with its address space limited.
LIMITED_JB = (
    "import resource, runpy, sys\n"
    f"resource.setrlimit(resource.RLIMIT_AS, ({MEMORY_LIMIT}, {MEMORY_LIMIT}))\n"
    "sys.argv[0] = 'jb'\n"
    "runpy.run_module('junebug', run_name='__main__')\n"
)


def run_limited(*args: str, env: dict[str, str] | None = None) -> tuple[int, str]:
    """Run ``jb`` with bounded memory; its exit code and standard error."""
    environ = {**os.environ, **(env or {}), "JUNEBUG_DISABLE_LOGGING": "1"}
    result = subprocess.run(
        [sys.executable, "-c", LIMITED_JB, *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=environ,
        check=False,
    )
    return result.returncode, result.stderr


class AliasBombTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.path = write(BOMB)
        self.addCleanup(Path(self.path).unlink)

    def test_file_refused_quickly_in_bounded_memory(self) -> None:
        tracemalloc.start()
        self.addCleanup(tracemalloc.stop)
        started = time.monotonic()
        with self.assertRaises(ConfigError) as caught:
            load_config(self.path, {})
        elapsed = time.monotonic() - started
        _current, peak = tracemalloc.get_traced_memory()
        self.assertIn("YAML aliases expand to more than", str(caught.exception))
        self.assertIn(self.path, str(caught.exception))
        self.assertLess(peak, 10 * 1024 * 1024)
        self.assertLess(elapsed, 10)

    def test_environment_value_refused(self) -> None:
        with self.assertRaises(ConfigError) as caught:
            load_config(None, {"JUNEBUG_STARTUP_CHANNELS": f"[{INLINE_BOMB}]"})
        self.assertIn("startup_channels", str(caught.exception))
        with self.assertRaises(ConfigError):
            load_message_api_config(
                None,
                {
                    **MESSAGE_API_REQUIRED,
                    "JUNEBUG_MESSAGE_API_STATE_CACHE_CONFIG": INLINE_BOMB,
                },
            )

    def test_jb_exits_2(self) -> None:
        """``jb -c bomb.yaml`` exits 2 with one line, within 512 MiB."""
        logs = tempfile.mkdtemp(prefix="junebug-bomb-logs-")
        code, stderr = run_limited(
            "-c", self.path, "--embedded", "-p", "0", "-lp", logs
        )
        self.assertEqual(code, 2, stderr)
        self.assertIn("alias bomb", stderr)
        self.assertEqual(len(stderr.strip().splitlines()), 1, stderr)

    def test_message_api_flag_exits_2(self) -> None:
        code, stderr = run_limited(
            "message-api",
            "--state-cache-config",
            INLINE_BOMB,
            env=MESSAGE_API_REQUIRED,
        )
        self.assertEqual(code, 2, stderr)
        self.assertIn("--state-cache-config", stderr)
        self.assertNotIn("Traceback", stderr)


class OtherShapesTests(SynchronousTestCase):
    def load(self, text: str) -> object:
        path = write(text)
        self.addCleanup(Path(path).unlink)
        return load_config(path, {})

    def test_alias_containing_itself(self) -> None:
        with self.assertRaises(ConfigError) as caught:
            self.load("plugins: &p [{type: a.B, again: *p}]\n")
        self.assertIn("refers to a value containing it", str(caught.exception))

    def test_deep_nesting(self) -> None:
        with self.assertRaises(ConfigError) as caught:
            self.load("plugins: " + "[" * 100_000 + "]" * 100_000 + "\n")
        self.assertIn("nested too deeply", str(caught.exception))

    def test_ordinary_anchors_still_work(self) -> None:
        config = self.load(
            "defaults: &telnet {type: telnet, amqp_queue: q, config: {}}\n"
            "startup_channels:\n"
            "  - {<<: *telnet, id: one}\n"
            "  - {<<: *telnet, id: two}\n"
        )
        self.assertEqual(
            [channel["id"] for channel in config.startup_channels],  # type: ignore[attr-defined]
            ["one", "two"],
        )
