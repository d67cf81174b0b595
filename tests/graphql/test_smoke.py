from tests.support.api import Api, sign_up


async def test_viewer_and_personal_team(api: Api) -> None:
    actor = await sign_up(api, "first@example.com")
    data = await api.ok(
        "query($id: ID!) { team(id: $id) { id name viewerRole credits { total status } } }",
        {"id": actor.team_id},
        token=actor.token,
    )
    assert data["team"]["viewerRole"] == "ADMIN"
    assert data["team"]["credits"] == {"total": "0.00", "status": "CREDITS_EXHAUSTED"}
