"""Schema migrations on SQLite and PostgreSQL: they build the models' schema and keep data."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, text
from sqlalchemy.engine import Engine
from sqlmodel import SQLModel, select

from core.db import alembic_config, make_engine, migrate, session_scope
from core.models import Event, Machine, User


def test_migrated_schema_matches_the_models(engine: Engine) -> None:
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        assert compare_metadata(context, SQLModel.metadata) == []


def test_migrate_reaches_the_newest_revision(engine: Engine) -> None:
    head = ScriptDirectory.from_config(alembic_config(str(engine.url))).get_current_head()
    with engine.connect() as conn:
        assert MigrationContext.configure(conn).get_current_revision() == head
    assert set(inspect(engine).get_table_names()) >= set(SQLModel.metadata.tables)


def test_migrating_again_keeps_existing_rows(db_url: str) -> None:
    first = make_engine(db_url)
    migrate(first)
    with session_scope(first) as session:
        session.add(User(id="u_keep", name="keeper"))
        session.flush()
        session.add(
            Machine(
                id="vast_keep",
                owner_id="u_keep",
                gpu_name="RTX 4090",
                image="ubuntu:22.04",
                disk_gb=20,
            )
        )
        session.flush()
        session.add(
            Event(machine_id="vast_keep", owner_id="u_keep", event_type="created", data={"k": 1})
        )
    first.dispose()

    second = make_engine(db_url)
    try:
        migrate(second)
        with session_scope(second) as session:
            assert session.get(User, "u_keep") is not None
            machine = session.get(Machine, "vast_keep")
            assert machine is not None and machine.gpu_name == "RTX 4090"
            events = session.exec(select(Event).where(Event.machine_id == "vast_keep")).all()
            assert [e.data for e in events] == [{"k": 1}]
    finally:
        second.dispose()


def test_timestamps_come_back_in_utc(engine: Engine) -> None:
    sao_paulo = timezone(timedelta(hours=-3))
    with session_scope(engine) as session:
        session.add(
            User(id="u_tz", name="tz", created_at=datetime(2026, 1, 1, 9, tzinfo=sao_paulo))
        )
    with session_scope(engine) as session:
        user = session.get(User, "u_tz")
        assert user is not None
        assert user.created_at == datetime(2026, 1, 1, 12, tzinfo=UTC)
        assert user.created_at.utcoffset() == timedelta(0)


def test_ssh_user_comes_and_goes_keeping_the_machines(db_url: str) -> None:
    """0012 down and up again: the machine keeps its row and address; its user, gone with the
    column, reads null (root) once it is back."""
    engine = make_engine(db_url)
    config = alembic_config(engine.url.render_as_string(hide_password=False))

    def to(revision: str, *, up: bool) -> None:
        with engine.begin() as connection:
            config.attributes["connection"] = connection
            (command.upgrade if up else command.downgrade)(config, revision)

    try:
        migrate(engine)
        with session_scope(engine) as session:
            session.add(User(id="u_ssh", name="ssh"))
            session.flush()
            session.add(
                Machine(
                    id="gce_ssh",
                    owner_id="u_ssh",
                    gpu_name="L4",
                    image="ubuntu:22.04",
                    disk_gb=20,
                    ssh_host="203.0.113.7",
                    ssh_port=22,
                    ssh_user="dumont",
                )
            )
        to("0011", up=False)
        assert "ssh_user" not in {c["name"] for c in inspect(engine).get_columns("machines")}
        with engine.connect() as conn:
            assert conn.execute(text("SELECT ssh_host FROM machines")).scalar_one() == "203.0.113.7"
        to("head", up=True)
        with session_scope(engine) as session:
            machine = session.get(Machine, "gce_ssh")
            assert machine is not None and (machine.ssh_port, machine.ssh_user) == (22, None)
    finally:
        engine.dispose()
