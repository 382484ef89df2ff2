"""Derived UIDs: the same result's objects keep their UIDs; different ones never share them."""

from pydicom.uid import UID

from gateway.outputs.uids import derived_uid


def test_the_same_parts_give_the_same_valid_uid() -> None:
    first, again = derived_uid("seg", "model", "1", b"\x00\x01"), derived_uid("seg", "model", "1", b"\x00\x01")
    assert first == again
    assert first.startswith("2.25.") and len(first) <= 64 and UID(first).is_valid


def test_part_boundaries_and_order_matter() -> None:
    assert derived_uid("ab", "c") != derived_uid("a", "bc")
    assert derived_uid("seg", "x") != derived_uid("x", "seg")
    assert derived_uid("seg", "x") != derived_uid("sr", "x")
