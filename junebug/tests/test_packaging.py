"""The container files: Dockerfile, docker-compose.yml, the entry point and
the Kubernetes example (Docker itself cannot run in the test environment)."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import tempfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import yaml
from twisted.trial.unittest import SynchronousTestCase

from junebug.cli import build_parser, cli_layer
from junebug.config import load_config

ROOT = Path(__file__).resolve().parents[2]
ENTRYPOINT = ROOT / "docker" / "entrypoint.sh"


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of the final stage, continuations joined."""
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    found = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        word, _, rest = line.partition(" ")
        if word.upper() == "FROM":
            found = []  # a new stage
        found.append((word.upper(), rest.strip()))
    return found


class DockerfileTests(SynchronousTestCase):
    def test_slim_non_root_with_healthcheck(self) -> None:
        steps = dockerfile_instructions()
        self.assertEqual(steps[0], ("FROM", "python:3.11-slim"))
        users = [args for name, args in steps if name == "USER"]
        self.assertTrue(users, "no USER")
        user = users[-1].split(":")[0]
        self.assertNotIn(user, ("root", "0"))
        checks = [args for name, args in steps if name == "HEALTHCHECK"]
        self.assertEqual(len(checks), 1)
        self.assertIn("/health", checks[0])
        entry = [args for name, args in steps if name == "ENTRYPOINT"]
        self.assertEqual(entry, ['["junebug-entrypoint"]'])
        copied = [args for name, args in steps if name == "COPY"]
        self.assertIn("docker/entrypoint.sh /usr/local/bin/junebug-entrypoint", copied)


class HealthcheckCommandTests(SynchronousTestCase):
    def run_check(self, code: int) -> int:
        """Run the HEALTHCHECK command against a server answering /health with
        ``code``; its exit status."""
        seen: list[str] = []

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                seen.append(self.path)
                self.send_response(code)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        self.addCleanup(server.server_close)
        self.addCleanup(server.shutdown)
        (check,) = [a for n, a in dockerfile_instructions() if n == "HEALTHCHECK"]
        command = json.loads(check[check.index("CMD") + 3 :])
        self.assertEqual(command[0], "python")
        command[0] = sys.executable  # the image's python; any will do here
        env = {**os.environ, "JUNEBUG_PORT": str(server.server_address[1])}
        result = subprocess.run(
            command, env=env, capture_output=True, timeout=30, check=False
        )
        self.assertEqual(seen, ["/health"])
        return result.returncode

    def test_healthy_and_unhealthy(self) -> None:
        self.assertEqual(self.run_check(200), 0)
        self.assertNotEqual(self.run_check(503), 0)


class ComposeTests(SynchronousTestCase):
    def test_three_services(self) -> None:
        compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
        services = compose["services"]
        self.assertEqual(set(services), {"jb", "redis", "rabbitmq"})
        jb = services["jb"]
        self.assertIn("8080:8080", jb["ports"])
        env = jb["environment"]
        self.assertEqual(env["JUNEBUG_REDIS_HOST"], "redis")
        self.assertEqual(env["JUNEBUG_AMQP_HOSTNAME"], "rabbitmq")
        self.assertEqual(
            env["JUNEBUG_AMQP_PASSWORD"],
            services["rabbitmq"]["environment"]["RABBITMQ_DEFAULT_PASS"],
        )
        self.assertEqual(set(jb["depends_on"]), {"redis", "rabbitmq"})
        redis = services["redis"]
        self.assertIn("--appendonly", redis["command"])
        self.assertEqual(
            redis["command"][redis["command"].index("--appendonly") + 1], "yes"
        )
        self.assertIn("6379:6379", redis["ports"])
        self.assertTrue(any(v.endswith(":/data") for v in redis["volumes"]))
        self.assertIn("5672:5672", services["rabbitmq"]["ports"])
        # The variables are ones jb reads.
        config = load_config(None, {k: str(v) for k, v in env.items()}, {})
        self.assertEqual(
            (config.redis.host, config.amqp.hostname), ("redis", "rabbitmq")
        )
        self.assertEqual(config.log_format, "json")
        # jb runs two workers, which need the real backends.
        self.assertEqual(jb["command"], ["--workers", "2"])
        self.assertIs(jb["init"], True)
        path, layer = cli_layer(build_parser().parse_args(jb["command"]))
        config = load_config(path, {k: str(v) for k, v in env.items()}, layer)
        self.assertEqual(config.worker_count, 2)
        self.assertFalse(config.embedded)
        # Each worker's own /metrics port is published.
        self.assertEqual(
            (config.metrics_port_of(1), config.metrics_port_of(2)), (9100, 9101)
        )
        self.assertIn("9100-9101:9100-9101", jb["ports"])


class EntrypointTests(SynchronousTestCase):
    def run_entrypoint(self, *args: str) -> list[str]:
        """Run the entry point under bash with a stub ``jb`` that prints its
        arguments; return the words it printed."""
        bin_dir = tempfile.mkdtemp(prefix="jb-stub-")
        stub = Path(bin_dir) / "jb"
        stub.write_text('#!/usr/bin/env bash\necho jb "$@" "[$JUNEBUG_REDIS_HOST]"\n')
        stub.chmod(0o755)
        env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"}
        env["JUNEBUG_REDIS_HOST"] = "redis"
        result = subprocess.run(
            ["bash", str(ENTRYPOINT), *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        self.assertEqual(result.returncode, 0, result.stderr)
        return shlex.split(result.stdout)

    def test_flags_and_subcommands_go_to_jb(self) -> None:
        self.assertEqual(self.run_entrypoint(), ["jb", "[redis]"])
        self.assertEqual(
            self.run_entrypoint("-c", "/app/config.yaml", "--embedded"),
            ["jb", "-c", "/app/config.yaml", "--embedded", "[redis]"],
        )
        self.assertEqual(
            self.run_entrypoint("jb", "--port", "9000"),
            ["jb", "--port", "9000", "[redis]"],
        )
        self.assertEqual(
            self.run_entrypoint("message-api", "--port", "9001"),
            ["jb", "message-api", "--port", "9001", "[redis]"],
        )

    def test_other_commands_run_as_given(self) -> None:
        self.assertEqual(self.run_entrypoint("echo", "hello"), ["hello"])

    def test_jb_replaces_the_shell(self) -> None:
        """exec: jb is the container's process (signals reach it)."""
        text = ENTRYPOINT.read_text()
        self.assertTrue(text.startswith("#!/usr/bin/env bash\n"))
        self.assertIn('exec jb "$@"', text)
        self.assertTrue(os.access(ENTRYPOINT, os.X_OK))


class KubernetesTests(SynchronousTestCase):
    def documents(self) -> dict[str, Any]:
        text = (ROOT / "docs" / "kubernetes" / "junebug.yaml").read_text()
        return {doc["kind"]: doc for doc in yaml.safe_load_all(text)}

    def test_manifests(self) -> None:
        docs = self.documents()
        self.assertEqual(set(docs), {"ConfigMap", "Deployment", "Service"})
        pod = docs["Deployment"]["spec"]["template"]["spec"]
        self.assertTrue(pod["securityContext"]["runAsNonRoot"])
        (container,) = pod["containers"]
        self.assertEqual(
            container["readinessProbe"]["httpGet"]["path"], "/health/ready"
        )
        self.assertEqual(container["livenessProbe"]["httpGet"]["path"], "/health/live")
        # The drain (shutdown_timeout, 30 s by default) fits in the grace period.
        self.assertGreater(pod["terminationGracePeriodSeconds"], 30)
        self.assertEqual(container["ports"][0]["containerPort"], 8080)
        service = docs["Service"]["spec"]
        self.assertEqual(
            service["selector"], docs["Deployment"]["spec"]["selector"]["matchLabels"]
        )

    def test_config_map_is_a_valid_config(self) -> None:
        text = self.documents()["ConfigMap"]["data"]["jb.yaml"]
        path = Path(tempfile.mkdtemp(prefix="jb-k8s-")) / "jb.yaml"
        path.write_text(text)
        config = load_config(str(path), {}, {})
        self.assertEqual((config.interface, config.port), ("0.0.0.0", 8080))
        self.assertEqual(config.log_format, "json")
        self.assertEqual(config.redis.host, "redis")
