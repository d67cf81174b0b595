"""Rows of a table distributed by `team_id`: saved and deleted by (team_id, id), never id alone.

On PostgreSQL the primary key of a team table is (team_id, id), and on Citus `team_id`
says which shard holds the row: Tortoise's own `save()`/`delete()`/`refresh_from_db()`
filter on the `pk` column alone, which would lose the primary key's index on PostgreSQL
and be broadcast to every shard on Citus. `TeamRow` keeps the single `pk` field Tortoise
needs and sends every write of an instance through a query filtered on both columns.
(docs/distribution-keys.md)
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from typing import Any

from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.exceptions import IntegrityError, OperationalError
from tortoise.fields.base import DatabaseDefault
from tortoise.models import Model
from tortoise.queryset import QuerySet

# The distribution column: never updated (on Citus it cannot be; a row never changes team).
TEAM_COLUMN = "team_id"


class TeamRow(Model):
    """A model whose rows belong to one team (`team_id`), addressed by (team_id, id)."""

    team_id: uuid.UUID

    class Meta:
        abstract = True

    def _row(self, db: BaseDBAsyncClient) -> QuerySet[Any]:
        """This row, by the whole key."""
        team = getattr(self, TEAM_COLUMN, None)
        if team is None:
            raise OperationalError(f"{type(self).__name__} has no team_id: it cannot be addressed")
        return type(self).filter(team_id=team, pk=self.pk).using_db(db)

    def _updated_values(self, update_fields: Iterable[str] | None) -> dict[str, Any]:
        """The columns an UPDATE sets: the ones asked for, else all but the key."""
        meta = self._meta
        asked = list(update_fields) if update_fields is not None else None
        values: dict[str, Any] = {}
        for name in asked if asked is not None else meta.fields_db_projection:
            field = meta.fields_map[name]
            if field.pk or field.generated or name == TEAM_COLUMN:
                if asked is not None and (field.pk or field.generated):
                    raise OperationalError(f"Can't update key or generated field {name}")
                continue
            value = getattr(self, name)
            if isinstance(value, DatabaseDefault):
                continue
            values[name] = value
        return values

    async def save(
        self,
        using_db: BaseDBAsyncClient | None = None,
        update_fields: Iterable[str] | None = None,
        force_create: bool = False,
        force_update: bool = False,
    ) -> None:
        """Inserts as Tortoise does; updates with `WHERE team_id = .. AND id = ..`."""
        inserting = (
            force_create
            or self.pk is None
            or not (self._saved_in_db or update_fields or force_update)
        )
        if inserting:
            await super().save(using_db, update_fields, force_create, force_update)
            return
        db = using_db or self._choose_db(True)
        fields = list(update_fields) if update_fields is not None else None
        await self._pre_save(db, fields)
        values = self._updated_values(fields)
        rows = await self._row(db).update(**values) if values else 1
        if force_update and rows == 0:
            raise IntegrityError(f"Can't update object that doesn't exist. PK: {self.pk}")
        self._saved_in_db = True
        await self._post_save(db, False, fields)

    async def delete(self, using_db: BaseDBAsyncClient | None = None) -> None:
        """Deletes with `WHERE team_id = .. AND id = ..`."""
        db = using_db or self._choose_db(True)
        if not self._saved_in_db:
            raise OperationalError("Can't delete unpersisted record")
        await self._pre_delete(db)
        await self._row(db).delete()
        await self._post_delete(db)

    async def refresh_from_db(
        self, fields: Iterable[str] | None = None, using_db: BaseDBAsyncClient | None = None
    ) -> None:
        """Reads the row again by (team_id, id)."""
        if not self._saved_in_db:
            raise OperationalError("Can't refresh unpersisted record")
        db = using_db or self._choose_db()
        wanted = list(fields) if fields else None
        query = self._row(db)
        if wanted:
            query = query.only(*wanted)
        fresh = await query.get()
        for name in wanted or self._meta.db_fields:
            setattr(self, name, getattr(fresh, name, None))
