"""Cursors are opaque and tamper-evident, and bound to the list they came from."""

import pytest

from wallet_project.core import errors
from wallet_project.core.cursor import decode_cursor, encode_cursor


def test_a_cursor_round_trips_within_its_list():
    cursor = encode_cursor({"id": 123, "at": "2026-12-01T00:00:00Z"}, scope="history:7")
    assert decode_cursor(cursor, scope="history:7") == {"id": 123, "at": "2026-12-01T00:00:00Z"}


@pytest.mark.parametrize(
    "mangle",
    [
        lambda c: c[:-1] + ("A" if c[-1] != "A" else "B"),  # signature changed
        lambda c: c[:10],  # truncated
        lambda c: "x" + c,  # prefixed
        lambda c: "",  # empty
        lambda c: "not a cursor",
        lambda c: "\ud800",  # a lone surrogate
    ],
)
def test_a_modified_cursor_is_invalid_request(mangle):
    cursor = encode_cursor({"id": 5}, scope="holds:1")
    with pytest.raises(errors.InvalidRequest) as raised:
        decode_cursor(mangle(cursor), scope="holds:1")
    assert raised.value.errors == {"cursor": ["invalid cursor"]}


def test_a_cursor_of_another_list_is_refused():
    cursor = encode_cursor({"id": 5}, scope="holds:1")
    with pytest.raises(errors.InvalidRequest):
        decode_cursor(cursor, scope="holds:2")
