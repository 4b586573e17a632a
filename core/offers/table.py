"""The offer reservations table: an offer a provision is about to rent, held for a short
while so that concurrent provisions (on this worker or any other) try different offers."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Column
from sqlmodel import Field, SQLModel

from core.db_types import UtcDateTime


class OfferReservation(SQLModel, table=True):
    __tablename__ = "offer_reservations"

    provider: str = Field(primary_key=True, max_length=32)
    offer_id: str = Field(primary_key=True, max_length=128)
    # The instance label of the provision attempt holding it: a retry of that same attempt
    # takes its own reservation back.
    holder: str = Field(max_length=200)
    reserved_until: datetime = Field(sa_column=Column(UtcDateTime(), nullable=False, index=True))
