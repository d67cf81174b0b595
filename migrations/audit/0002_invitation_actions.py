"""Audit actions for invitations accepted, declined and canceled, and members who left."""

from tortoise import migrations
from tortoise.migrations import operations as ops
from app.teams.audit.models import AuditAction
from tortoise import fields


class Migration(migrations.Migration):
    dependencies = [("audit", "0001_initial"), ("teams", "0001_initial")]

    initial = False

    operations = [
        ops.AlterField(
            model_name="AuditEvent",
            name="action",
            field=fields.CharEnumField(
                description="INVOICED_LIMIT_CHANGED: INVOICED_LIMIT_CHANGED\nMEMBER_ADDED: MEMBER_ADDED\nMEMBER_REMOVED: MEMBER_REMOVED\nMEMBER_ROLE_CHANGED: MEMBER_ROLE_CHANGED\nAUTO_TOP_UP_CONFIGURED: AUTO_TOP_UP_CONFIGURED\nPAYMENT_METHOD_ADDED: PAYMENT_METHOD_ADDED\nPAYMENT_METHOD_REMOVED: PAYMENT_METHOD_REMOVED\nDEFAULT_PAYMENT_METHOD_CHANGED: DEFAULT_PAYMENT_METHOD_CHANGED\nBILLING_ADDRESS_UPDATED: BILLING_ADDRESS_UPDATED\nINVITATION_ACCEPTED: INVITATION_ACCEPTED\nINVITATION_DECLINED: INVITATION_DECLINED\nINVITATION_CANCELED: INVITATION_CANCELED\nMEMBER_LEFT: MEMBER_LEFT",
                enum_type=AuditAction,
                max_length=40,
            ),
        ),
    ]
