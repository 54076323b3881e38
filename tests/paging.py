"""Cursor paging under writes: read a list page by page while another thread keeps adding to it."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from django.db import connections


@dataclass
class Writer:
    """A thread that calls ``insert`` over and over, committing each time, until told to stop."""

    insert: Callable[[int], Any]
    done: int = 0
    failure: BaseException | None = None
    _changed: threading.Condition = field(default_factory=threading.Condition)
    _stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        try:
            while not self._stop.is_set():
                self.insert(self.done)
                with self._changed:
                    self.done += 1
                    self._changed.notify_all()
        except BaseException as exc:  # noqa: BLE001 - re-raised in the test's thread
            self.failure = exc
            with self._changed:
                self._changed.notify_all()
        finally:
            connections.close_all()

    def wait_for_more(self, seen: int, timeout: float = 30) -> int:
        """Block until the writer has committed more than ``seen`` inserts; the number it has."""
        with self._changed:
            assert self._changed.wait_for(lambda: self.done > seen or self.failure, timeout), "writer stalled"
        if self.failure:
            raise self.failure
        return self.done


@contextmanager
def writing(insert: Callable[[int], Any]) -> Iterator[Writer]:
    writer = Writer(insert)
    thread = threading.Thread(target=writer.run, daemon=True)
    thread.start()
    try:
        yield writer
    finally:
        writer._stop.set()
        thread.join(30)
    if writer.failure:
        raise writer.failure


def read_by_cursor(
    fetch: Callable[[dict[str, Any]], dict], *, limit: int, insert: Callable[[int], Any]
) -> tuple[list[list[dict]], int]:
    """Every page of a list, from ``limit`` alone to the page without a next cursor; once the first page is
    read a writer starts calling ``insert``, and each later page waits for at least one more committed
    insert, so the list grows between every two reads (and during them). ``fetch(params)`` is the JSON
    body of one request. Returns the pages' items and how many inserts were committed."""
    first = fetch({"limit": limit})
    pages = [first["data"]]
    pagination = first["pagination"]
    seen = 0
    with writing(insert) as writer:
        while pagination["has_more"]:
            assert pagination["next_cursor"], pagination
            seen = writer.wait_for_more(seen)
            body = fetch({"cursor": pagination["next_cursor"], "limit": limit})
            pages.append(body["data"])
            pagination = body["pagination"]
        assert pagination == {"next_cursor": None, "has_more": False}
        inserted = writer.wait_for_more(seen)
    return pages, inserted


def tampered(cursor: str) -> list[str]:
    """Cursors that differ from ``cursor`` by a character of its payload or its signature, or by a cut."""
    payload, _, signature = cursor.rpartition(":")

    def flip(text: str, at: int) -> str:
        return text[:at] + ("A" if text[at] != "A" else "B") + text[at + 1 :]

    return [
        flip(payload, len(payload) // 2) + ":" + signature,
        payload + ":" + flip(signature, 0),
        cursor[:-1],
        cursor + "A",
    ]
