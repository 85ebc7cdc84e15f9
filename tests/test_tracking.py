"""Tracking rules (pure): rise/fall, weights, reverse, track_file values, clamping.

Case numbers refer to the reference's §2.5 (29-31, 33).
"""

from __future__ import annotations

import pytest

from pyvrrp.core.tracking import RiseFall, Status, TrackState, effective


def feed(rf: RiseFall, results: str) -> list[Status]:
    """Feed 'o' (success) / 'x' (failure) results; the status after each."""
    out = []
    for r in results:
        rf.result(r == "o")
        out.append(rf.status)
    return out


def test_first_result_decides_from_init() -> None:
    assert feed(RiseFall(rise=5, fall=3), "o") == [Status.OK]
    assert feed(RiseFall(rise=5, fall=3), "x") == [Status.FAIL]


def test_fall_needs_consecutive_failures_and_rise_consecutive_successes() -> None:
    rf = RiseFall(rise=5, fall=3)
    statuses = feed(rf, "o" + "xx" + "o" + "xxx" + "oooo" + "x" + "ooooo")
    ok, fail = Status.OK, Status.FAIL
    assert statuses == [ok, ok, ok, ok, ok, ok, fail] + [fail] * 4 + [fail] + [fail] * 4 + [ok]


def test_init_fail_starts_failed_and_needs_rise_successes() -> None:
    rf = RiseFall(rise=2, fall=1, status=Status.FAIL)
    assert feed(rf, "oo") == [Status.FAIL, Status.OK]


def test_result_reports_changes_only() -> None:
    rf = RiseFall(rise=1, fall=2)
    assert [rf.result(r) for r in (True, True, False, False, False)] == \
        [True, False, False, True, False]


def script(weight: int, up: bool | None, reverse: bool = False) -> TrackState:
    return TrackState("track_script chk", weight, reverse, up=up)


def test_case29_negative_weight_subtracts_while_failing() -> None:
    assert effective(200, [script(-60, True)]) == (200, frozenset())
    assert effective(200, [script(-60, False)]) == (140, frozenset())


def test_positive_weight_adds_while_up() -> None:
    assert effective(100, [script(20, True)]) == (120, frozenset())
    assert effective(100, [script(20, False)]) == (100, frozenset())


@pytest.mark.parametrize(("base", "weights", "expected"), [
    (250, [20], 254),     # case 31: never 255 by tracking
    (10, [-60], 1),       # never below 1
    (100, [50, 50, 50], 250),
])
def test_clamped_to_1_254(base: int, weights: list[int], expected: int) -> None:
    states = [TrackState(f"s{i}", w, up=w > 0) for i, w in enumerate(weights)]
    assert effective(base, states)[0] == expected


def test_case31_owner_priority_never_moves() -> None:
    assert effective(255, [script(-100, False), script(50, True)])[0] == 255


def test_case30_weight_zero_failure_is_a_fault() -> None:
    assert effective(100, [script(0, False)]) == (100, frozenset({"track_script chk"}))
    assert effective(100, [script(0, True)]) == (100, frozenset())


def test_weight_zero_without_a_result_holds_out_of_master() -> None:
    assert effective(100, [script(0, None)])[1] == {"track_script chk"}
    assert effective(100, [script(-30, None)]) == (100, frozenset())


def test_reverse_inverts_the_status() -> None:
    assert effective(100, [script(0, True, reverse=True)])[1] == {"track_script chk"}
    assert effective(100, [script(-30, True, reverse=True)])[0] == 70


def test_faults_from_several_objects_are_all_named() -> None:
    states = [TrackState("track_interface eth1", 0, up=False), script(0, False)]
    assert effective(100, states)[1] == {"track_interface eth1", "track_script chk"}


def file(weight: int, value: int, reverse: bool = False) -> TrackState:
    return TrackState("track_file f", weight, reverse, value=value)


def test_case33_track_file_values() -> None:
    assert effective(100, [file(0, 1)])[1] == {"track_file f"}
    assert effective(100, [file(0, 0)]) == (100, frozenset())
    assert effective(100, [file(10, -30)])[1] == {"track_file f"}  # -300 < -253
    assert effective(100, [file(10, -5)]) == (50, frozenset())
    assert effective(100, [file(2, 7)]) == (114, frozenset())
    assert effective(100, [file(2, 7, reverse=True)]) == (86, frozenset())
