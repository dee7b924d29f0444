"""Message and event ids: version 4 UUIDs as 32 hex digits, never repeated."""

from __future__ import annotations

import os
import random
import uuid

from twisted.trial.unittest import SynchronousTestCase

from junebug.messages import generate_id


class GenerateIdTests(SynchronousTestCase):
    def test_ids_are_version_4_uuids_in_hex(self) -> None:
        for _ in range(1000):
            value = generate_id()
            parsed = uuid.UUID(hex=value)
            self.assertEqual(parsed.hex, value)
            self.assertEqual(parsed.version, 4)
            self.assertEqual(parsed.variant, uuid.RFC_4122)

    def test_ids_do_not_repeat(self) -> None:
        self.assertEqual(len({generate_id() for _ in range(50_000)}), 50_000)

    def test_seeding_the_shared_generator_does_not_repeat_ids(self) -> None:
        """Tests (hypothesis among them) seed ``random``; ids must not follow."""
        random.seed(7)
        first = generate_id()
        random.seed(7)
        self.assertNotEqual(generate_id(), first)

    def test_a_forked_child_gets_other_ids(self) -> None:
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: send one id and leave at once
            os.close(read)
            os.write(write, generate_id().encode())
            os._exit(0)
        os.close(write)
        mine = generate_id()
        with os.fdopen(read, "rb") as pipe:
            theirs = pipe.read().decode()
        os.waitpid(pid, 0)
        self.assertEqual(len(theirs), 32)
        self.assertNotEqual(theirs, mine)
