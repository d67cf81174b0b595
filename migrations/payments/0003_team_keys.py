"""Payments tables keyed by team, and `stripe_objects`: which team a Stripe id belongs to
(docs/distribution-keys-money.md).

- PostgreSQL: the primary keys of stripe_customers, payment_methods and purchases become
  (team_id, id); purchases (team_id, payment_method_id) -> payment_methods (team_id, id)
  replaces the single-column link (ON DELETE NO ACTION instead of SET NULL: Citus
  refuses SET NULL on a key with the distribution column, and a method is never
  deleted but with its team, whose purchases go in the same statement).
- Both: Stripe ids (customer, payment method, payment intent) are unique per team, and
  across teams through the primary key of `stripe_objects`, filled here from the rows
  already stored. PostgreSQL drops the single-column unique constraints. SQLite keeps
  them (dropping one means rebuilding the table, and rebuilding payment_methods would
  null every purchase's method through ON DELETE SET NULL): they say no more than
  `stripe_objects` does.
"""

from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise import fields
from tortoise.migrations.constraints import UniqueConstraint

from app.payments.models import StripeObjectKind

_TABLES = ("stripe_customers", "payment_methods", "purchases")

# (table, Stripe id column, kind in stripe_objects)
_STRIPE_IDS = (
    ("stripe_customers", "stripe_id", "CUSTOMER"),
    ("payment_methods", "stripe_id", "PAYMENT_METHOD"),
    ("purchases", "payment_intent_id", "PAYMENT_INTENT"),
)


async def _rows(client, sql: str) -> list[dict]:
    _, rows = await client.execute_query(sql)
    return list(rows)


async def _constraints(client, table: str, kind: str, columns: tuple[str, ...]) -> list[str]:
    """Names of the constraints of this kind ('p', 'u', 'f') on exactly these columns."""
    wanted = "ARRAY[" + ", ".join(f"'{c}'" for c in columns) + "]::name[]"
    rows = await _rows(
        client,
        "SELECT c.conname FROM pg_constraint c WHERE c.conrelid = to_regclass('\"" + table + "\"') "
        f"AND c.contype = '{kind}' AND array(SELECT a.attname FROM unnest(c.conkey) "
        "WITH ORDINALITY AS k(attnum, pos) JOIN pg_attribute a ON a.attrelid = c.conrelid "
        f"AND a.attnum = k.attnum ORDER BY k.pos) = {wanted}",
    )
    return [row["conname"] for row in rows]


async def _swap_primary_key(client, table: str, columns: tuple[str, ...]) -> None:
    rows = await _rows(
        client,
        "SELECT conname FROM pg_constraint WHERE contype = 'p' "
        f"AND conrelid = to_regclass('\"{table}\"')",
    )
    drop = f'DROP CONSTRAINT "{rows[0]["conname"]}", ' if rows else ""
    cols = ", ".join(f'"{c}"' for c in columns)
    await client.execute_script(
        f'ALTER TABLE "{table}" {drop}ADD CONSTRAINT "{table}_pkey" PRIMARY KEY ({cols})'
    )


class _TeamUnique(ops.AlterField):
    """A Stripe id column loses its own unique constraint on PostgreSQL (the team's
    takes over); SQLite keeps it (see above). Only the state changes there."""

    async def database_forward(self, app_label, old_state, new_state, state_editor=None):
        if state_editor is None or state_editor.client.capabilities.dialect != "postgres":
            return
        model = old_state.apps.get_model(f"{app_label}.{self.model_name}")
        table = model._meta.db_table
        for name in await _constraints(state_editor.client, table, "u", (self.name,)):
            await state_editor.client.execute_script(
                f'ALTER TABLE "{table}" DROP CONSTRAINT "{name}"'
            )

    async def database_backward(self, app_label, old_state, new_state, state_editor=None):
        if state_editor is None or state_editor.client.capabilities.dialect != "postgres":
            return
        model = new_state.apps.get_model(f"{app_label}.{self.model_name}")
        table = model._meta.db_table
        await state_editor.client.execute_script(
            f'ALTER TABLE "{table}" ADD CONSTRAINT "{table}_{self.name}_key" UNIQUE ("{self.name}")'
        )


async def _check_same_team(client) -> None:
    rows = await _rows(
        client,
        'SELECT count(*) AS n FROM "purchases" AS p JOIN "payment_methods" AS m '
        'ON m."id" = p."payment_method_id" WHERE m."team_id" <> p."team_id"',
    )
    if rows[0]["n"]:
        raise RuntimeError(
            f"{rows[0]['n']} purchases name another team's payment method: "
            "the team keys cannot be added"
        )


async def _keys_forward(apps, schema_editor):
    client = schema_editor.client
    if client.capabilities.dialect != "postgres":
        return
    await _check_same_team(client)
    for name in await _constraints(client, "purchases", "f", ("payment_method_id",)):
        await client.execute_script(f'ALTER TABLE "purchases" DROP CONSTRAINT "{name}"')
    for table in _TABLES:
        await _swap_primary_key(client, table, ("team_id", "id"))
    await client.execute_script(
        'ALTER TABLE "purchases" ADD CONSTRAINT "purchases_team_payment_method_id_fkey" '
        'FOREIGN KEY ("team_id", "payment_method_id") '
        'REFERENCES "payment_methods" ("team_id", "id") ON DELETE NO ACTION'
    )


async def _keys_backward(apps, schema_editor):
    client = schema_editor.client
    if client.capabilities.dialect != "postgres":
        return
    await client.execute_script(
        'ALTER TABLE "purchases" DROP CONSTRAINT IF EXISTS "purchases_team_payment_method_id_fkey"'
    )
    for table in _TABLES:
        await _swap_primary_key(client, table, ("id",))
    await client.execute_script(
        'ALTER TABLE "purchases" ADD CONSTRAINT "purchases_payment_method_id_fkey" '
        'FOREIGN KEY ("payment_method_id") REFERENCES "payment_methods" ("id") '
        "ON DELETE SET NULL"
    )


async def _fill_stripe_objects(apps, schema_editor):
    """Every Stripe id already stored, with its team (they were unique across teams)."""
    client = schema_editor.client
    for table, column, kind in _STRIPE_IDS:
        await client.execute_script(
            'INSERT INTO "stripe_objects" ("stripe_id", "kind", "team_id") '
            f'SELECT "{column}", \'{kind}\', "team_id" FROM "{table}" '
            f'WHERE "{column}" IS NOT NULL'
        )


async def _empty_stripe_objects(apps, schema_editor):
    await schema_editor.client.execute_script('DELETE FROM "stripe_objects"')


class Migration(migrations.Migration):
    dependencies = [
        ("payments", "0002_dispute_shortfall"),
        ("credits", "0010_team_keys"),
        ("teams", "0004_team_keys"),
    ]

    initial = False

    operations = [
        ops.CreateModel(
            name="StripeObject",
            fields=[
                ("stripe_id", fields.CharField(primary_key=True, unique=True, db_index=True, max_length=255)),
                ("kind", fields.CharEnumField(description="CUSTOMER: CUSTOMER\nPAYMENT_METHOD: PAYMENT_METHOD\nPAYMENT_INTENT: PAYMENT_INTENT", enum_type=StripeObjectKind, max_length=16)),
                ("team_id", fields.UUIDField()),
            ],
            options={"table": "stripe_objects", "app": "payments", "pk_attr": "stripe_id", "table_description": "Which team a Stripe id belongs to: a webhook names a customer, a payment method or"},
            bases=["Model"],
        ),
        ops.RunPython(_fill_stripe_objects, _empty_stripe_objects),
        ops.RunPython(_keys_forward, _keys_backward),
        _TeamUnique(
            model_name="PaymentMethod",
            name="stripe_id",
            field=fields.CharField(max_length=255),
        ),
        ops.AddConstraint(
            model_name="PaymentMethod",
            constraint=UniqueConstraint(fields=("team", "stripe_id"), name=None),
        ),
        _TeamUnique(
            model_name="Purchase",
            name="payment_intent_id",
            field=fields.CharField(null=True, max_length=255),
        ),
        ops.AddConstraint(
            model_name="Purchase",
            constraint=UniqueConstraint(fields=("team", "payment_intent_id"), name=None),
        ),
        _TeamUnique(
            model_name="StripeCustomer",
            name="stripe_id",
            field=fields.CharField(max_length=255),
        ),
        ops.AddConstraint(
            model_name="StripeCustomer",
            constraint=UniqueConstraint(fields=("team", "stripe_id"), name=None),
        ),
    ]
