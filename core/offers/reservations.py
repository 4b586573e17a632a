"""Offer reservations across every provision in flight, on this worker or any other.

Machines created together all search at the same moment and see the same cheapest offers;
without a claim each of them tries to rent the same one, all but one lose the race, and every
lost race is a create call (vast.ai allows about one per 4.5 s). A provision claims an offer in
the database before it rents it and passes over offers others hold. A claim lasts `hold` (long
enough for the rent to show in the provider's search) and is then free again, so a crashed
provision holds nothing for long.

The database is a helper here, never a gate: when it cannot be reached, provisions go on
without claims (as before reservations existed) rather than wait for it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta

from sqlalchemy import delete, or_, select
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import SQLAlchemyError

from core.db_types import utcnow
from core.offers.table import OfferReservation

log = logging.getLogger(__name__)

DEFAULT_HOLD = timedelta(minutes=2)
_table = OfferReservation.__table__  # type: ignore[attr-defined]


class OfferReservations:
    def __init__(
        self,
        engine: Engine,
        *,
        hold: timedelta = DEFAULT_HOLD,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._engine = engine
        self._hold = hold
        self._clock = clock

    def held_by_others(self, provider: str, holder: str) -> set[str]:
        """The offers other provisions hold now: a read, no write transaction."""
        now = self._clock()
        try:
            with self._engine.connect() as conn:
                rows = conn.execute(
                    select(_table.c.offer_id).where(
                        _table.c.provider == provider,
                        _table.c.holder != holder,
                        _table.c.reserved_until > now,
                    )
                )
                return set(rows.scalars())
        except SQLAlchemyError as err:
            log.warning("offer reservations unreadable, provisioning without them: %s", err)
            return set()

    def claim(self, provider: str, offer_id: str, holder: str) -> bool:
        """Hold `offer_id` for `holder`: True when it is now theirs (free, expired, or theirs
        already), False when another provision holds it."""
        now = self._clock()
        try:
            with self._engine.begin() as conn:
                # Lapsed claims go in the write a claim makes anyway (the table stays small).
                conn.execute(delete(_table).where(_table.c.reserved_until <= now))
                return self._upsert(conn, provider, offer_id, holder, now)
        except SQLAlchemyError as err:
            log.warning("offer %s not reserved (database unavailable): %s", offer_id, err)
            return True

    def _upsert(
        self, conn: Connection, provider: str, offer_id: str, holder: str, now: datetime
    ) -> bool:
        insert = postgresql_insert if conn.dialect.name == "postgresql" else sqlite_insert
        until = now + self._hold
        statement = insert(_table).values(
            provider=provider, offer_id=offer_id, holder=holder, reserved_until=until
        )
        statement = statement.on_conflict_do_update(
            index_elements=[_table.c.provider, _table.c.offer_id],
            set_={"holder": holder, "reserved_until": until},
            where=or_(_table.c.reserved_until <= now, _table.c.holder == holder),
        )
        # RETURNING, not rowcount: psycopg reports no count for an upsert.
        return conn.execute(statement.returning(_table.c.offer_id)).first() is not None
