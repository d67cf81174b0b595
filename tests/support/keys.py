"""API keys as a client makes and uses them: GraphQL documents and small builders."""

from __future__ import annotations

from typing import Any

from tests.support.api import Api

KEY_FIELDS = "id name scopes prefix createdAt lastUsedAt expiresAt revokedAt"

CREATE_SERVICE_KEY = f"""mutation($input: CreateServiceKeyInput!) {{
  createServiceKey(input: $input) {{ key {{ {KEY_FIELDS} }} secret errors {{ code field message }} }} }}"""
REVOKE_SERVICE_KEY = f"""mutation($id: ID!) {{
  revokeServiceKey(input: {{keyId: $id}}) {{ key {{ {KEY_FIELDS} }} errors {{ code field }} }} }}"""
SERVICE_KEYS = f"{{ serviceKeys {{ {KEY_FIELDS} }} }}"

CREATE_TEAM_KEY = f"""mutation($input: CreateTeamApiKeyInput!) {{
  createTeamApiKey(input: $input) {{ apiKey {{ {KEY_FIELDS} }} secret errors {{ code field message }} }} }}"""
REVOKE_TEAM_KEY = f"""mutation($t: ID!, $id: ID!) {{
  revokeTeamApiKey(input: {{teamId: $t, keyId: $id}}) {{ apiKey {{ {KEY_FIELDS} }} errors {{ code field }} }} }}"""
TEAM_KEYS = f"query($t: ID!) {{ team(id: $t) {{ apiKeys {{ {KEY_FIELDS} }} }} }}"


async def service_key(
    api: Api, operator_token: str, scopes: list[str], name: str = "gateway"
) -> tuple[dict[str, Any], str]:
    """A new service key (as the API shows it) and its secret."""
    data = await api.ok(
        CREATE_SERVICE_KEY, {"input": {"name": name, "scopes": scopes}}, operator_token
    )
    payload = data["createServiceKey"]
    assert payload["errors"] == [], payload
    return payload["key"], payload["secret"]


async def team_key(
    api: Api,
    admin_token: str,
    team_id: str,
    scopes: list[str],
    name: str = "script",
    expires_at: str | None = None,
) -> tuple[dict[str, Any], str]:
    """A new team API key (as the API shows it) and its secret."""
    variables = {
        "input": {"teamId": team_id, "name": name, "scopes": scopes, "expiresAt": expires_at}
    }
    data = await api.ok(CREATE_TEAM_KEY, variables, admin_token)
    payload = data["createTeamApiKey"]
    assert payload["errors"] == [], payload
    return payload["apiKey"], payload["secret"]
