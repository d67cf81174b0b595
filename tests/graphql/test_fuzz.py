"""Property-based fuzzing of the whole schema (hypothesis-graphql): generated queries and
mutations, sent as every identity, never answer INTERNAL or a 5xx.

The suite runs a bounded number of operations (`FUZZ_EXAMPLES`, default 25 per root type
and mode); set it higher for a long run, whose figures the test prints, e.g.
`FUZZ_EXAMPLES=2000 .venv/bin/python -m pytest tests/graphql/test_fuzz.py -s`. After every
run the ledger audit must be clean.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from datetime import UTC, datetime
from typing import Any

import httpx
from graphql import GraphQLSchema
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from hypothesis_graphql import Mode, from_schema, nodes

from app.billing.ledger_audit import audit
from app.graphql.schema import schema
from tests.support.api import Actor, Api, make_token, sign_up
from tests.support.billing import grant

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "25"))
ADD_MEMBER = """mutation($t: ID!, $e: String!) {
  addTeamMember(input: {teamId: $t, email: $e, role: MEMBER}) { errors { code } } }"""


def _decimals() -> st.SearchStrategy[Any]:
    plain = st.from_regex(r"\A[0-9]{1,12}(\.[0-9]{1,9})?\Z", fullmatch=True)
    odd = st.text(max_size=20) | st.sampled_from(["1e3", "+5", "-1", "1_0", "\u0661", "NaN"])
    return st.one_of(plain, odd).map(nodes.String)


def _datetimes() -> st.SearchStrategy[Any]:
    times = st.datetimes(
        min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30), timezones=st.just(UTC)
    ).map(lambda d: d.isoformat())
    return st.one_of(times, st.text(max_size=30)).map(nodes.String)


def _ids(known: list[str]) -> st.SearchStrategy[Any]:
    return st.one_of(st.sampled_from(known), st.text(max_size=40)).map(nodes.String)


def _collect(strategy: st.SearchStrategy[Any], count: int) -> list[str]:
    """Generates `count` documents up front (hypothesis drives a sync function; the app is
    then called from this test's own event loop)."""
    found: list[str] = []

    @settings(
        max_examples=count,
        database=None,
        deadline=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(strategy)
    def draw(document: Any) -> None:
        found.append(str(document))

    draw()
    return found


def _strategies(graphql_schema: GraphQLSchema, known: list[str]) -> dict[str, Any]:
    scalars = {"Decimal": _decimals(), "DateTime": _datetimes(), "ID": _ids(known)}
    return {
        f"{kind}/{mode.name}": from_schema(
            graphql_schema, custom_scalars=scalars, mode=mode, fields=fields
        )
        for kind, fields in (
            ("query", list(graphql_schema.query_type.fields) if graphql_schema.query_type else []),
            ("mutation", None),
        )
        for mode in (Mode.POSITIVE, Mode.NEGATIVE)
    }


async def _send(http: httpx.AsyncClient, document: str, token: str | None) -> httpx.Response:
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    body = json.dumps({"query": document})
    return await http.post("/graphql", content=body, headers=headers)


async def test_no_generated_operation_fails_inside(
    client: httpx.AsyncClient, api: Api, admin: Actor, operator: Actor
) -> None:
    member_email = "member@example.com"
    await api.ok(ADD_MEMBER, {"t": admin.team_id, "e": member_email}, admin.token)
    member = await sign_up(api, member_email)
    other = await sign_up(api, "other-admin@example.com")
    await grant(api, operator, admin.team_id, "100.00")
    identities = {
        "anonymous": None,
        "member": member.token,
        "admin": admin.token,
        "other admin": other.token,
        "operator": operator.token,
        "stale": make_token("never-seen@example.com"),
    }
    known = [admin.team_id, other.team_id, member.team_id]
    graphql_schema = schema._schema
    tried = 0
    internal: list[tuple[str, str, str]] = []
    server_errors: list[tuple[str, str, int]] = []
    codes: Counter[str] = Counter()
    for name, strategy in _strategies(graphql_schema, known).items():
        documents = _collect(strategy, EXAMPLES)
        for document in documents:
            for who, token in identities.items():
                tried += 1
                response = await _send(client, document, token)
                if response.status_code >= 500:
                    server_errors.append((document, who, response.status_code))
                    continue
                body = response.json()
                for error in body.get("errors") or ():
                    code = (error.get("extensions") or {}).get("code", "NONE")
                    codes[code] += 1
                    if code in ("INTERNAL", "NONE"):
                        internal.append((name, who, document))
    print(
        f"\nfuzz: {tried} operations, {len(internal)} INTERNAL, {len(server_errors)} 5xx; "
        f"top-level codes {dict(codes.most_common())}"
    )
    assert not server_errors, server_errors[:3]
    assert not internal, internal[:3]
    assert await audit() == []
