"""SMPP sequence numbers."""

from __future__ import annotations

from itertools import islice

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from junebug.transports.smpp.sequencing import (
    MAX_SEQUENCE_NUMBER,
    SequenceGenerator,
    wrap_sequence_number,
)


class SequenceGeneratorTests(SynchronousTestCase):
    def test_counts_from_one(self) -> None:
        """Numbers start at 1 and increase."""
        generator = SequenceGenerator()
        self.assertIsNone(generator.last)
        self.assertEqual(list(islice(generator, 3)), [1, 2, 3])
        self.assertEqual(generator.last, 3)

    def test_wraps_after_the_maximum(self) -> None:
        """0x7FFFFFFF is followed by 1, never 0 or 0x80000000."""
        generator = SequenceGenerator(MAX_SEQUENCE_NUMBER - 1)
        self.assertEqual(
            [generator.next_sequence_number() for _ in range(4)],
            [0x7FFFFFFE, 0x7FFFFFFF, 1, 2],
        )

    def test_start_must_be_in_range(self) -> None:
        """A start outside 1..0x7FFFFFFF is refused."""
        self.assertRaises(ValueError, SequenceGenerator, 0)
        self.assertRaises(ValueError, SequenceGenerator, 0x80000000)
        self.assertEqual(next(SequenceGenerator(0x7FFFFFFF)), 0x7FFFFFFF)


class WrapTests(SynchronousTestCase):
    def test_wrap_points(self) -> None:
        """Counter values map into the range, wrapping after the maximum."""
        self.assertEqual(wrap_sequence_number(1), 1)
        self.assertEqual(wrap_sequence_number(MAX_SEQUENCE_NUMBER), 0x7FFFFFFF)
        self.assertEqual(wrap_sequence_number(MAX_SEQUENCE_NUMBER + 1), 1)
        self.assertEqual(wrap_sequence_number(2 * MAX_SEQUENCE_NUMBER + 5), 5)
        self.assertRaises(ValueError, wrap_sequence_number, 0)

    @settings(max_examples=200, deadline=None)
    @given(st.integers(1, 2**64))
    def test_wrapped_counters_follow_the_generator(self, counter: int) -> None:
        """Consecutive counters give what the generator would hand out."""
        number = wrap_sequence_number(counter)
        self.assertTrue(1 <= number <= MAX_SEQUENCE_NUMBER)
        generator = SequenceGenerator(number)
        next(generator)
        self.assertEqual(next(generator), wrap_sequence_number(counter + 1))
