"""A team row is saved, deleted and read again by (team_id, id), never by id alone."""

from __future__ import annotations

import logging
import uuid

import pytest
from tortoise.exceptions import OperationalError

from app.kit import clock
from app.teams.models import Invitation, Role, Team


def _statements(caplog: pytest.LogCaptureFixture, verb: str) -> list[str]:
    found = []
    for record in caplog.records:
        text = record.getMessage()
        if "invitations" in text and text.lstrip().upper().startswith(verb):
            found.append(text.replace(" ", ""))
    return found


async def _invitation() -> Invitation:
    now = clock.now()
    team = await Team.create(id=uuid.uuid4(), name="rows", created_at=now)
    return await Invitation.create(
        team=team, email="someone@example.com", role=Role.MEMBER, created_at=now
    )


async def test_save_delete_and_refresh_go_by_team_and_id(caplog: pytest.LogCaptureFixture) -> None:
    invitation = await _invitation()
    caplog.set_level(logging.DEBUG, logger="tortoise.db_client")
    caplog.clear()

    invitation.role = Role.ADMIN
    await invitation.save(update_fields=["role"])
    await invitation.save()  # every column but the key
    await invitation.refresh_from_db()
    await invitation.delete()

    updates = _statements(caplog, "UPDATE")
    assert len(updates) == 2
    assert all('"team_id"=' in sql and '"id"=' in sql for sql in updates)
    # The team is never set (a row never changes team).
    assert all('"team_id"' not in sql.split("WHERE")[0] for sql in updates)
    (delete,) = _statements(caplog, "DELETE")
    assert '"team_id"=' in delete
    reads = _statements(caplog, "SELECT")
    assert reads
    assert all('"team_id"=' in sql for sql in reads)
    assert not await Invitation.exists(id=invitation.id)


async def test_a_row_under_another_team_is_not_written() -> None:
    invitation = await _invitation()
    stranger = await Team.create(id=uuid.uuid4(), name="other", created_at=clock.now())
    moved = await Invitation.get(id=invitation.id)
    moved.team_id = stranger.id
    moved.role = Role.ADMIN
    await moved.save(update_fields=["role"])
    await moved.delete()
    kept = await Invitation.get(id=invitation.id)
    assert (kept.team_id, kept.role) == (invitation.team_id, Role.MEMBER)


async def test_a_row_never_saved_cannot_be_deleted_or_refreshed() -> None:
    invitation = Invitation(email="x@example.com", role=Role.MEMBER, created_at=clock.now())
    with pytest.raises(OperationalError):
        await invitation.delete()
    with pytest.raises(OperationalError):
        await invitation.refresh_from_db()
