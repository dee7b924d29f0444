"""Placement: balanced, sticky, deterministic, minimal movement."""

from __future__ import annotations

from collections import Counter

from twisted.trial.unittest import SynchronousTestCase

from junebug.cluster.placement import assign, plan_for, quota

CHANNELS = [f"channel-{n}" for n in range(30)]


def spread(placed: dict[str, str]) -> list[int]:
    return sorted(Counter(placed.values()).values())


class PlacementTests(SynchronousTestCase):
    def test_quota(self) -> None:
        self.assertEqual(quota(30, 3), 10)
        self.assertEqual(quota(31, 3), 11)
        self.assertEqual(quota(5, 0), 0)

    def test_every_channel_placed_balanced(self) -> None:
        placed = assign(["a", "b", "c"], CHANNELS, {})
        self.assertEqual(set(placed), set(CHANNELS))
        self.assertEqual(spread(placed), [10, 10, 10])

    def test_no_process_no_placement(self) -> None:
        self.assertEqual(assign([], CHANNELS, {}), {})

    def test_deterministic_whatever_the_order(self) -> None:
        one = assign(["a", "b", "c"], CHANNELS, {})
        two = assign(["c", "a", "b"], list(reversed(CHANNELS)), {})
        self.assertEqual(one, two)

    def test_sticky(self) -> None:
        """A channel stays with its owner while the owner is within quota."""
        owners: dict[str, str | None] = dict.fromkeys(CHANNELS[:10], "a")
        owners.update(dict.fromkeys(CHANNELS[10:20], "b"))
        owners.update(dict.fromkeys(CHANNELS[20:], "c"))
        self.assertEqual(assign(["a", "b", "c"], CHANNELS, owners), owners)

    def test_excess_released_to_the_new_process_only(self) -> None:
        """A 4th process joining takes only the excess of the others."""
        before = assign(["a", "b", "c"], CHANNELS, {})
        after = assign(["a", "b", "c", "d"], CHANNELS, dict(before))
        moved = [cid for cid in CHANNELS if before[cid] != after[cid]]
        self.assertEqual({after[cid] for cid in moved}, {"d"})
        self.assertEqual(len(moved), 6)  # quota 8: each of a, b, c gives 2
        self.assertEqual(spread(after), [6, 8, 8, 8])

    def test_a_leaving_process_moves_only_its_channels(self) -> None:
        before = assign(["a", "b", "c"], CHANNELS, {})
        after = assign(["a", "b"], CHANNELS, dict(before))
        moved = [cid for cid in CHANNELS if before[cid] != after[cid]]
        self.assertEqual({before[cid] for cid in moved}, {"c"})
        self.assertEqual(spread(after), [15, 15])

    def test_owner_not_alive_is_ignored(self) -> None:
        owners: dict[str, str | None] = dict.fromkeys(CHANNELS, "dead")
        placed = assign(["a", "b"], CHANNELS, owners)
        self.assertEqual(spread(placed), [15, 15])

    def test_plans_of_all_processes_agree(self) -> None:
        """Each process's own plan, applied together, is the assignment."""
        live = ["a", "b", "c"]
        owners: dict[str, str | None] = dict.fromkeys(CHANNELS, "a")
        plans = {me: plan_for(me, live, CHANNELS, owners) for me in live}
        self.assertEqual(plans["a"].acquire, ())
        self.assertEqual(len(plans["a"].release), 20)
        for me in ["b", "c"]:
            # They wait for a's release: a live owner's channel is not taken.
            self.assertEqual(plans[me].acquire, ())
        released = dict.fromkeys(plans["a"].release)
        after: dict[str, str | None] = {**owners, **released}
        plans = {me: plan_for(me, live, CHANNELS, after) for me in live}
        self.assertEqual(len(plans["b"].acquire), 10)
        self.assertEqual(len(plans["c"].acquire), 10)
        self.assertFalse(set(plans["b"].acquire) & set(plans["c"].acquire))

    def test_lost_owner_channels_are_acquired(self) -> None:
        owners: dict[str, str | None] = dict.fromkeys(CHANNELS, "gone")
        plan = plan_for("a", ["a"], CHANNELS, owners)
        self.assertEqual(plan.acquire, tuple(sorted(CHANNELS)))

    def test_plan_counts_me_even_if_not_listed(self) -> None:
        plan = plan_for("a", [], ["x"], {})
        self.assertEqual(plan.acquire, ("x",))
