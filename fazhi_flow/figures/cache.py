"""Per-process cache of a cycle's figure aggregates, under the cycle's figures token.

The token (``models.figures_version``) is changed by database triggers by every write the aggregates
depend on, so an entry is found only while the data it was computed from is unchanged: nothing is
ever invalidated by hand, and a stale entry simply stops being asked for. The token is read before
the aggregate is computed, so what is stored under a token is at least as new as the token.
"""
from __future__ import annotations

import threading
from collections import OrderedDict

from sqlalchemy import func, select

from ..extensions import db

# Entries are small (an indicator's totals by class); the compile page's book is larger and keeps
# fewer (see ``BOOKS``).
MAX_ENTRIES = 256


class _Lru:
    def __init__(self, size: int):
        self.size = size
        self._items: OrderedDict = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key):
        with self._lock:
            value = self._items.get(key)
            if value is not None:
                self._items.move_to_end(key)
            return value

    def put(self, key, value) -> None:
        with self._lock:
            self._items[key] = value
            self._items.move_to_end(key)
            while len(self._items) > self.size:
                self._items.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()


AGGREGATES = _Lru(MAX_ENTRIES)
# A city's approved figures (18,000 contributions, 30,000 values: ~10 MB) and the book's indexes built
# from them (~3 MB): the latest two of each only.
BOOKS = _Lru(4)
# Rendered page parts (the dashboard's matrix: ~50-300 KB for a page of a city's units).
PAGES = _Lru(48)


# Reviewers' queues (待审核): every reviewable row of a region's collecting cycles with the labels and
# filter choices made from them (~0.5 MB for a city's 4,500 rows), one entry per reviewer.
QUEUES = _Lru(16)
# Every contribution of one section with its values, as plain rows, for the rules' sums on the editor
# and the review page (~100 KB for a section of a city's 300 units).
SECTIONS = _Lru(240)
# One unit's own parts of the indicators' totals and its sections' roles (a few KB each): one entry of
# each per unit whose liaison opens a page, so a city's 300 units fit.
UNIT_PARTS = _Lru(800)


def cycle_tokens(*conditions) -> tuple | None:
    """((cycle id, token), ...) of the cycles matching ``conditions``, in id order, read in one
    statement; None when one of them has no usable token (see ``figures_token``): nothing is cached."""
    from ..models import ReportCycle
    from ..models.figures_version import FiguresVersion

    columns = [ReportCycle.id, FiguresVersion.token]
    postgresql = db.session.get_bind().dialect.name == "postgresql"
    if postgresql:
        columns.append(FiguresVersion.txid == func.txid_current_if_assigned())
    rows = db.session.execute(
        select(*columns).outerjoin(FiguresVersion, FiguresVersion.cycle_id == ReportCycle.id)
        .where(*conditions).order_by(ReportCycle.id)).all()
    if any(row[1] is None or (postgresql and row[2]) for row in rows):
        return None
    return tuple((row[0], row[1]) for row in rows)


def figures_token(cycle_id: int) -> int | None:
    """The cycle's current token as this transaction sees it; None, and then nothing is cached, when
    the cycle never changed since the table was made, or (PostgreSQL) when this transaction changed
    it: the token changes once per transaction, so a later write of the same transaction would not
    change it again."""
    from ..models import ReportCycle

    found = cycle_tokens(ReportCycle.id == cycle_id)
    return found[0][1] if found else None


def cache_key(kind: str, cycle_id: int, token: int | None):
    """None (do not cache) without a token; else a key that also names the database, so two
    applications of one process (tests, a second region's database) never share entries."""
    if token is None:
        return None
    return (kind, str(db.engine.url), cycle_id, token)


def cached(kind: str, cycle_id: int, compute, store: _Lru = AGGREGATES, token=...):
    """``compute()``, or what it returned before under the cycle's current token (or under ``token``:
    the one read when the data ``compute`` uses was loaded). What is stored is shared by every
    request of the process: callers never change it."""
    key = cache_key(kind, cycle_id, figures_token(cycle_id) if token is ... else token)
    if key is None:
        return compute()
    value = store.get(key)
    if value is None:
        value = compute()
        store.put(key, value)
    return value
