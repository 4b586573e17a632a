"""0017 on SQLite and PostgreSQL: machines from before it read on-demand with no bid, a bid
machine keeps its bid, and down and up again keeps the rows."""

from __future__ import annotations

from alembic import command
from sqlalchemy import inspect, text

from core.db import alembic_config, make_engine, migrate, session_scope
from core.models import Machine


def test_bids_come_and_go_keeping_the_machines(db_url: str) -> None:
    engine = make_engine(db_url)
    config = alembic_config(engine.url.render_as_string(hide_password=False))

    def to(revision: str, *, up: bool) -> None:
        with engine.begin() as connection:
            config.attributes["connection"] = connection
            (command.upgrade if up else command.downgrade)(config, revision)

    def columns() -> set[str]:
        return {c["name"] for c in inspect(engine).get_columns("machines")}

    try:
        to("0016", up=True)
        assert not {"interruptible", "bid_price"} & columns()
        with engine.begin() as conn:  # a machine written before 0017, in 0016's columns
            conn.execute(
                text("INSERT INTO users (id, name, created_at) VALUES ('u_b', 'b', :t)"),
                {"t": "2026-01-01T00:00:00+00:00"},
            )
            conn.execute(
                text(
                    "INSERT INTO machines (id, owner_id, provider, gpu_name, num_gpus, image,"
                    " disk_gb, status, created_at, updated_at) VALUES ('old', 'u_b', 'vast',"
                    " 'RTX 4090', 1, 'img', 20, 'running', :t, :t)"
                ),
                {"t": "2026-01-01T00:00:00+00:00"},
            )
        migrate(engine)
        with session_scope(engine) as session:
            old = session.get(Machine, "old")
            assert old is not None and (old.interruptible, old.bid_price) == (False, None)
            session.add(
                Machine(
                    id="bid",
                    owner_id="u_b",
                    gpu_name="RTX 4090",
                    image="img",
                    disk_gb=20,
                    interruptible=True,
                    bid_price=0.35,
                )
            )
        with session_scope(engine) as session:
            bid = session.get(Machine, "bid")
            assert bid is not None and (bid.interruptible, bid.bid_price) == (True, 0.35)

        to("0016", up=False)
        assert not {"interruptible", "bid_price"} & columns()
        with engine.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM machines")).scalar_one() == 2
        to("head", up=True)
        with session_scope(engine) as session:
            bid = session.get(Machine, "bid")
            # The bid went with its column: the machine reads on-demand again.
            assert bid is not None and (bid.interruptible, bid.bid_price) == (False, None)
    finally:
        engine.dispose()
