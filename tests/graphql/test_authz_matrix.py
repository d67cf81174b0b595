"""The authorization matrix: every Query field (and every Team field), Mutation and
Subscription of the live schema against {no token, bad token, member of another team,
member, admin, operator} and the API keys {a usage:write service key, a usage:read one,
the team's BILLING_READ and BILLING_WRITE keys, another team's BILLING_WRITE key}.

The operations under test are read from the schema: a field without an entry in EXPECTED
fails `test_every_operation_has_an_entry`, and an entry for a field that is gone fails it
too. Each cell is the outcome the caller gets: OK (data, maybe with a UserError in the
payload: authorization let it through), or the top-level code (UNAUTHENTICATED, NOT_FOUND,
FORBIDDEN). Subscriptions run over a real websocket: a missing or bad token closes the
socket with 4403; a refused subscription answers an `error` message with the code.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from graphql import GraphQLNamedType, GraphQLObjectType, Undefined, get_named_type

from app.credits import alerts
from app.credits.models import AlertKind
from app.events.commit import atomic
from app.graphql.schema import schema
from app.teams import tokens
from tests.support.api import JWT_SECRET, Api, join, make_token, sign_up
from tests.support.keys import service_key, team_key
from tests.support.subscriptions import LiveServer, Ws, http_api, opened, until_listeners

KEY_ACTORS = ("service", "reader", "team_read", "team_write", "other_team_key")
ACTORS = ("none", "bad", "stranger", "member", "admin", "operator", *KEY_ACTORS)
OK, UNAUTH, NOT_FOUND, FORBIDDEN = "OK", "UNAUTHENTICATED", "NOT_FOUND", "FORBIDDEN"


def row(
    stranger: str,
    member: str,
    admin: str,
    operator: str,
    *,
    service: str = FORBIDDEN,
    team_read: str = FORBIDDEN,
    team_write: str = FORBIDDEN,
    other_team_key: str = FORBIDDEN,
) -> dict[str, str]:
    """Keys default to FORBIDDEN: a key does only what a row grants it."""
    return {
        "none": UNAUTH,
        "bad": UNAUTH,
        "stranger": stranger,
        "member": member,
        "admin": admin,
        "operator": operator,
        "service": service,  # a usage:write service key
        "reader": FORBIDDEN,  # a usage:read service key: nothing on /graphql
        "team_read": team_read,  # the team's BILLING_READ key
        "team_write": team_write,  # the team's BILLING_WRITE key
        "other_team_key": other_team_key,  # another team's BILLING_WRITE key
    }


ANYONE = row(OK, OK, OK, OK)  # any signed-in user, about themselves (keys are not users)
# The team's members and its keys read; operators read any team; another team's key finds
# nothing, as for a team that does not exist.
TEAM_READ = row(NOT_FOUND, OK, OK, OK, team_read=OK, team_write=OK, other_team_key=NOT_FOUND)
# The team's admins and its BILLING_WRITE key change its billing.
TEAM_ADMIN = row(NOT_FOUND, FORBIDDEN, OK, FORBIDDEN, team_write=OK, other_team_key=NOT_FOUND)
# The team's admins manage people and keys; no key ever does.
TEAM_PEOPLE = row(NOT_FOUND, FORBIDDEN, OK, FORBIDDEN)
ADMIN_READ = row(NOT_FOUND, FORBIDDEN, OK, OK, team_write=OK, other_team_key=NOT_FOUND)
OPERATOR = row(FORBIDDEN, FORBIDDEN, FORBIDDEN, OK)  # platform staff only
USAGE_WRITER = row(FORBIDDEN, FORBIDDEN, FORBIDDEN, OK, service=OK)  # and usage:write keys


@dataclass(frozen=True)
class Case:
    expected: dict[str, str]
    # The document and its variables for team `t` (the target team's id).
    document: str
    variables: Callable[[str], dict[str, Any]] = lambda _t: {}


def mutation(
    name: str, input_type: str, build: Callable[[str], dict[str, Any]]
) -> Callable[[dict[str, str]], Case]:
    document = f"mutation($input: {input_type}!) {{ {name}(input: $input) {{ __typename }} }}"
    return lambda expected: Case(expected, document, lambda t: {"input": build(t)})


def _u() -> str:
    return str(uuid.uuid4())


ADDRESS = {
    "name": "Ada Lovelace",
    "line1": "1 Main St",
    "city": "Springfield",
    "country": "US",
}

EXPECTED: dict[str, Case] = {
    "Query.viewer": Case(ANYONE, "{ viewer { id email memberships { role } } }"),
    "Query.team": Case(TEAM_READ, "query($t: ID!) { team(id: $t) { id } }", lambda t: {"t": t}),
    "Mutation.createTeam": mutation("createTeam", "CreateTeamInput", lambda t: {"name": "new"})(
        ANYONE
    ),
    "Mutation.addTeamMember": mutation(
        "addTeamMember", "AddTeamMemberInput", lambda t: {"teamId": t, "email": f"{_u()}@x.io"}
    )(TEAM_PEOPLE),
    "Mutation.removeTeamMember": mutation(
        "removeTeamMember",
        "RemoveTeamMemberInput",
        lambda t: {"teamId": t, "email": "nobody@example.com"},
    )(TEAM_PEOPLE),
    "Mutation.setTeamMemberRole": mutation(
        "setTeamMemberRole",
        "SetTeamMemberRoleInput",
        lambda t: {"teamId": t, "email": "member@example.com", "role": "MEMBER"},
    )(TEAM_PEOPLE),
    "Mutation.setInvoicedSpendingLimit": mutation(
        "setInvoicedSpendingLimit",
        "SetInvoicedSpendingLimitInput",
        lambda t: {"teamId": t, "limit": "0"},
    )(TEAM_ADMIN),
    "Mutation.recordUsage": mutation(
        "recordUsage",
        "RecordUsageInput",
        lambda t: {"teamId": t, "amount": "0.01", "idempotencyKey": _u()},
    )(USAGE_WRITER),
    "Mutation.recordUsageBatch": mutation(
        "recordUsageBatch",
        "RecordUsageBatchInput",
        lambda t: {"events": [{"teamId": t, "amount": "0.01", "idempotencyKey": _u()}]},
    )(USAGE_WRITER),
    "Mutation.grantCredits": mutation(
        "grantCredits", "GrantCreditsInput", lambda t: {"teamId": t, "amount": "1.00"}
    )(OPERATOR),
    "Mutation.createSetupIntent": mutation(
        "createSetupIntent", "CreateSetupIntentInput", lambda t: {"teamId": t}
    )(TEAM_ADMIN),
    "Mutation.addPaymentMethod": mutation(
        "addPaymentMethod",
        "AddPaymentMethodInput",
        lambda t: {"teamId": t, "stripePaymentMethodId": "pm_card_visa"},
    )(TEAM_ADMIN),
    "Mutation.setDefaultPaymentMethod": mutation(
        "setDefaultPaymentMethod",
        "SetDefaultPaymentMethodInput",
        lambda t: {"teamId": t, "paymentMethodId": _u()},
    )(TEAM_ADMIN),
    "Mutation.removePaymentMethod": mutation(
        "removePaymentMethod",
        "RemovePaymentMethodInput",
        lambda t: {"teamId": t, "paymentMethodId": _u()},
    )(TEAM_ADMIN),
    "Mutation.purchaseCredits": mutation(
        "purchaseCredits", "PurchaseCreditsInput", lambda t: {"teamId": t, "amount": "10.00"}
    )(TEAM_ADMIN),
    "Mutation.updateBillingAddress": mutation(
        "updateBillingAddress", "UpdateBillingAddressInput", lambda t: {"teamId": t, **ADDRESS}
    )(TEAM_ADMIN),
    "Mutation.payInvoice": mutation(
        "payInvoice", "PayInvoiceInput", lambda t: {"teamId": t, "invoiceId": _u()}
    )(TEAM_ADMIN),
    "Mutation.createPromoCode": mutation(
        "createPromoCode",
        "CreatePromoCodeInput",
        lambda t: {"code": f"P{uuid.uuid4().hex[:10].upper()}", "amount": "5.00"},
    )(OPERATOR),
    "Mutation.redeemPromoCode": mutation(
        "redeemPromoCode", "RedeemPromoCodeInput", lambda t: {"teamId": t, "code": "NO-SUCH"}
    )(TEAM_ADMIN),
    "Mutation.configureAutoTopUp": mutation(
        "configureAutoTopUp",
        "ConfigureAutoTopUpInput",
        lambda t: {
            "teamId": t,
            "enabled": False,
            "threshold": "5.00",
            "amount": "25.00",
            "monthlyLimit": "100.00",
        },
    )(TEAM_ADMIN),
    "Query.serviceKeys": Case(OPERATOR, "{ serviceKeys { id } }"),
    "Mutation.createServiceKey": mutation(
        "createServiceKey",
        "CreateServiceKeyInput",
        lambda t: {"name": "gateway", "scopes": ["usage:write"]},
    )(OPERATOR),
    "Mutation.revokeServiceKey": mutation(
        "revokeServiceKey", "RevokeServiceKeyInput", lambda t: {"keyId": _u()}
    )(OPERATOR),
    "Mutation.createTeamApiKey": mutation(
        "createTeamApiKey",
        "CreateTeamApiKeyInput",
        lambda t: {"teamId": t, "name": "script", "scopes": ["BILLING_READ"]},
    )(TEAM_PEOPLE),
    "Mutation.revokeTeamApiKey": mutation(
        "revokeTeamApiKey", "RevokeTeamApiKeyInput", lambda t: {"teamId": t, "keyId": _u()}
    )(TEAM_PEOPLE),
    # Addressed to the caller's own email: anyone signed in, answered in the payload.
    "Mutation.acceptInvitation": mutation(
        "acceptInvitation", "AcceptInvitationInput", lambda t: {"invitationId": "1"}
    )(ANYONE),
    "Mutation.declineInvitation": mutation(
        "declineInvitation", "DeclineInvitationInput", lambda t: {"invitationId": "1"}
    )(ANYONE),
    "Mutation.cancelInvitation": mutation(
        "cancelInvitation", "CancelInvitationInput", lambda t: {"teamId": t, "invitationId": "1"}
    )(TEAM_PEOPLE),
    # Whoever sees the team may try (an operator who is no member, and the last admin, are
    # refused in the payload); strangers do not learn the team exists.
    # About people: a key is nobody's membership.
    "Mutation.leaveTeam": mutation("leaveTeam", "LeaveTeamInput", lambda t: {"teamId": t})(
        row(NOT_FOUND, OK, OK, OK)
    ),
    "Mutation.updateNotificationSettings": mutation(
        "updateNotificationSettings",
        "UpdateNotificationSettingsInput",
        lambda t: {"teamId": t, "emails": ["finance@example.com"]},
    )(TEAM_ADMIN),
    "Query.webhookEndpoints": Case(OPERATOR, "{ webhookEndpoints { id } }"),
    "Query.webhookDeliveries": Case(
        OPERATOR,
        "query($e: ID!) { webhookDeliveries(endpointId: $e) { edges { cursor } } }",
        lambda t: {"e": _u()},
    ),
    "Mutation.createWebhookEndpoint": mutation(
        "createWebhookEndpoint",
        "CreateWebhookEndpointInput",
        lambda t: {"url": "https://gateway.example/hooks", "events": ["team.blocked"]},
    )(OPERATOR),
    "Mutation.deleteWebhookEndpoint": mutation(
        "deleteWebhookEndpoint", "DeleteWebhookEndpointInput", lambda t: {"endpointId": _u()}
    )(OPERATOR),
    "Mutation.replayWebhookDelivery": mutation(
        "replayWebhookDelivery", "ReplayWebhookDeliveryInput", lambda t: {"deliveryId": _u()}
    )(OPERATOR),
    "Subscription.creditsUpdated": Case(
        TEAM_READ, "subscription($teamId: ID!) { creditsUpdated(teamId: $teamId) { total } }"
    ),
    "Subscription.billingAlerts": Case(
        TEAM_READ, "subscription($teamId: ID!) { billingAlerts(teamId: $teamId) { id kind } }"
    ),
}

# Team's own fields: reading a team is TEAM_READ; these differ.
TEAM_FIELDS: dict[str, dict[str, str]] = {
    "auditLog": ADMIN_READ,
    "notificationSettings": ADMIN_READ,  # it lists people's addresses
    "apiKeys": row(NOT_FOUND, FORBIDDEN, OK, OK, other_team_key=NOT_FOUND),  # never a key
    "invitations": row(NOT_FOUND, FORBIDDEN, OK, OK, other_team_key=NOT_FOUND),  # people
    # A link's validity follows its person's membership; a key reads the same rows through
    # usageRecords and ledger instead.
    "exportUrl": row(
        NOT_FOUND, OK, OK, OK, team_read=FORBIDDEN, team_write=FORBIDDEN, other_team_key=NOT_FOUND
    ),
}


# Team fields with required arguments, and the arguments their cases pass.
TEAM_FIELD_ARGUMENTS: dict[str, str] = {
    "usage": '(from: "2026-01-01T00:00:00Z", to: "2026-01-02T00:00:00Z")',
    "exportUrl": '(kind: USAGE, from: "2026-01-01T00:00:00Z", to: "2026-01-02T00:00:00Z")',
}


def _selection(field_type: GraphQLNamedType) -> str:
    return " { __typename }" if isinstance(field_type, GraphQLObjectType) else ""


def _team_cases() -> dict[str, Case]:
    team = schema._schema.get_type("Team")
    assert isinstance(team, GraphQLObjectType)
    cases = {}
    for name, field in team.fields.items():
        required = [
            a
            for a, arg in field.args.items()
            if arg.type.__class__.__name__ == "GraphQLNonNull" and arg.default_value is Undefined
        ]
        arguments = TEAM_FIELD_ARGUMENTS.get(name, "")
        assert not required or arguments, (
            f"Team.{name} has required arguments: add them to TEAM_FIELD_ARGUMENTS"
        )
        document = (
            "query($t: ID!) { team(id: $t) { "
            + name
            + arguments
            + _selection(get_named_type(field.type))
            + " } }"
        )
        cases[f"Team.{name}"] = Case(TEAM_FIELDS.get(name, TEAM_READ), document, lambda t: {"t": t})
    return cases


def schema_operations() -> list[str]:
    names = []
    for root in ("Query", "Mutation", "Subscription"):
        root_type = schema._schema.get_type(root)
        assert isinstance(root_type, GraphQLObjectType)
        names += [f"{root}.{name}" for name in root_type.fields]
    return sorted(names)


def test_every_operation_has_an_entry() -> None:
    """A new query field, mutation or subscription needs its row in EXPECTED."""
    live = set(schema_operations())
    missing = sorted(live - EXPECTED.keys())
    stale = sorted(EXPECTED.keys() - live)
    assert not missing, f"no authorization entry for {missing}: add them to EXPECTED"
    assert not stale, f"entries for fields that are gone: {stale}"
    for case in EXPECTED.values():
        assert set(case.expected) == set(ACTORS)
    # Team fields are generated: every one is covered, with TEAM_READ unless listed.
    assert set(TEAM_FIELDS) <= {k.split(".", 1)[1] for k in _team_cases()}


# --- the actors ------------------------------------------------------------------------------


@dataclass
class Cast:
    team_id: str
    tokens: dict[str, str | None]


async def _cast(api: Api) -> Cast:
    admin = await sign_up(api, "admin@example.com")
    member = await sign_up(api, "member@example.com")
    stranger = await sign_up(api, "stranger@example.com")
    operator = await sign_up(api, "ops@platform.example", operator=True)
    await join(api, admin, member)
    bad = tokens.mint(
        "another-secret-" + "y" * 40, subject="sub:admin@example.com", email="admin@example.com"
    )
    _, service = await service_key(api, operator.token, ["usage:write"])
    _, reader = await service_key(api, operator.token, ["usage:read"], name="reports")
    _, team_read = await team_key(api, admin.token, admin.team_id, ["BILLING_READ"])
    _, team_write = await team_key(api, admin.token, admin.team_id, ["BILLING_WRITE"])
    _, other = await team_key(api, stranger.token, stranger.team_id, ["BILLING_WRITE"])
    return Cast(
        admin.team_id,
        {
            "none": None,
            "bad": bad,
            "stranger": stranger.token,
            "member": member.token,
            "admin": admin.token,
            "operator": operator.token,
            "service": service,
            "reader": reader,
            "team_read": team_read,
            "team_write": team_write,
            "other_team_key": other,
        },
    )


async def _outcome(api: Api, case: Case, team_id: str, token: str | None) -> str:
    body = await api.raw(case.document, case.variables(team_id), token)
    errors = body.get("errors")
    if not errors:
        assert body["data"] is not None, body
        return OK
    codes = {e.get("extensions", {}).get("code") for e in errors}
    assert len(codes) == 1, body
    (code,) = codes
    assert code in (UNAUTH, NOT_FOUND, FORBIDDEN), body
    return str(code)


HTTP_CASES = {
    name: case for name, case in EXPECTED.items() if not name.startswith("Subscription.")
} | _team_cases()


@pytest.mark.parametrize("name", sorted(HTTP_CASES))
async def test_queries_and_mutations(api: Api, name: str) -> None:
    case = HTTP_CASES[name]
    cast = await _cast(api)
    # The admin goes last: its mutations change the team the others are tried on.
    got = {}
    for actor in ("none", "bad", "stranger", "member", "operator", *KEY_ACTORS, "admin"):
        got[actor] = await _outcome(api, case, cast.team_id, cast.tokens[actor])
    assert got == case.expected


async def test_expired_and_malformed_tokens_are_unauthenticated(api: Api) -> None:
    expired = tokens.mint(
        JWT_SECRET, subject="sub:late@example.com", email="late@example.com",
        ttl=timedelta(seconds=-60),
    )  # fmt: skip
    for token in (expired, "not-a-jwt", make_token("x@example.com")[:-4] + "AAAA"):
        assert await api.error_code("{ viewer { id } }", token=token) == UNAUTH


# --- subscriptions over a websocket ----------------------------------------------------------------


async def _raise_alert(team_id: str) -> None:
    async with atomic() as tx:  # published after the commit
        await alerts.raise_alert(
            tx.conn, uuid.UUID(team_id), AlertKind.CREDITS_LOW, "matrix", key=uuid.uuid4().hex
        )


@pytest.mark.parametrize("name", ["Subscription.billingAlerts", "Subscription.creditsUpdated"])
async def test_subscriptions(server: LiveServer, name: str) -> None:
    case = EXPECTED[name]
    http = http_api(server.http_url)
    try:
        cast = await _cast(http)
    finally:
        await http.http.aclose()
    field = name.split(".", 1)[1]
    channel = alerts.alerts_channel(uuid.UUID(cast.team_id)) if field == "billingAlerts" else None
    got = {}
    for actor in ACTORS:
        token = cast.tokens[actor]
        if actor in ("none", "bad"):
            ws = await Ws.connect(server.ws_url)
            await ws.init(token)
            got[actor] = UNAUTH if await ws.closed_with() == 4403 else "OPEN"
            continue
        async with opened(server.ws_url, token) as ws:
            await ws.subscribe(cast.team_id, query=case.document)
            if channel is not None and case.expected[actor] == OK:
                # billingAlerts says nothing until an alert: raise one once it listens.
                await until_listeners(channel, 1)
                await _raise_alert(cast.team_id)
            message = await ws.recv()
            if message["type"] == "next" and not message["payload"].get("errors"):
                assert message["payload"]["data"][field] is not None
                got[actor] = OK
            else:
                assert message["type"] == "error", message
                got[actor] = message["payload"][0]["extensions"]["code"]
        if channel is not None:
            await until_listeners(channel, 0)
    assert got == case.expected
