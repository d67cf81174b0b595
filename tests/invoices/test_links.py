"""Where invoice links point: PUBLIC_URL when set, else back where the request came in."""

from __future__ import annotations

import httpx
import pytest
from starlette.requests import Request

from app.config import Settings
from app.kit.origin import public_base, request_base
from app.main import create_app
from tests.support.api import Actor, Api
from tests.support.invoices import INVOICES, purchase_invoice_for
from tests.support.subscriptions import LiveServer


async def _pdf_url(api: Api, admin: Actor) -> str:
    data = await api.ok(INVOICES, {"t": admin.team_id}, admin.token)
    url: str = data["team"]["invoices"]["edges"][0]["node"]["pdfUrl"]
    return url


async def test_a_server_on_any_port_hands_out_links_that_open(
    server: LiveServer, admin: Actor, database: Settings
) -> None:
    assert database.public_url is None
    invoice = await purchase_invoice_for(admin, "25.00")
    async with httpx.AsyncClient(base_url=server.http_url) as http:
        url = await _pdf_url(Api(http), admin)
    assert url.startswith(f"{server.http_url}/invoices/{invoice.id}/pdf?")
    # The link as a browser follows it: the absolute URL alone.
    async with httpx.AsyncClient() as browser:
        response = await browser.get(url)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/pdf"
    assert response.content.startswith(b"%PDF-")


def _app_client(database: Settings, **changes: object) -> httpx.AsyncClient:
    """The API under settings read as from the environment, `changes` applied."""
    settings = Settings(**{**database.model_dump(), **changes})
    transport = httpx.ASGITransport(app=create_app(settings, manage_db=False))
    return httpx.AsyncClient(transport=transport, base_url="http://internal:8000")


async def test_public_url_wins_over_the_request(database: Settings, admin: Actor) -> None:
    await purchase_invoice_for(admin, "25.00")
    async with _app_client(database, public_url="https://billing.example.com/") as http:
        url = await _pdf_url(Api(http), admin)
    assert url.startswith("https://billing.example.com/invoices/")


async def test_a_trusted_load_balancer_names_the_public_address(
    database: Settings, admin: Actor
) -> None:
    await purchase_invoice_for(admin, "25.00")
    forwarded = {
        "Authorization": f"Bearer {admin.token}",
        "X-Forwarded-Proto": "https",
        "X-Forwarded-Host": "billing.example.com",
    }
    body = {"query": INVOICES, "variables": {"t": admin.team_id}}
    links = []
    for proxies in ([], ["127.0.0.0/8"]):  # the test client's peer is 127.0.0.1
        async with _app_client(database, trusted_proxies=proxies) as http:
            response = await http.post("/graphql", json=body, headers=forwarded)
        links.append(response.json()["data"]["team"]["invoices"]["edges"][0]["node"]["pdfUrl"])
    assert links[0].startswith("http://internal:8000/invoices/")
    assert links[1].startswith("https://billing.example.com/invoices/")


def _request(
    headers: dict[str, str],
    *,
    client: tuple[str, int] | None = ("10.0.0.5", 40000),
    scheme: str = "http",
    server: tuple[str, int] | None = ("10.0.0.9", 8000),
) -> Request:
    scope = {
        "type": "http",
        "scheme": scheme,
        "method": "GET",
        "path": "/graphql",
        "query_string": b"",
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
        "client": client,
        "server": server,
    }
    return Request(scope)


FORWARDED = {
    "host": "10.0.0.9:8000",
    "x-forwarded-proto": "https",
    "x-forwarded-host": "billing.example.com",
    "x-forwarded-port": "443",
}


def test_the_request_host_and_port_make_the_base() -> None:
    assert request_base(_request({"host": "127.0.0.1:39127"}), []) == "http://127.0.0.1:39127"
    assert request_base(_request({"host": "Billing.Example.com"}), []) == (
        "http://billing.example.com"
    )
    # No usable Host header: the address the server listens on.
    assert request_base(_request({}), []) == "http://10.0.0.9:8000"
    assert request_base(_request({"host": "evil.example/x?"}), []) == "http://10.0.0.9:8000"
    assert request_base(_request({}, server=("::1", 8443)), []) == "http://[::1]:8443"
    assert request_base(_request({"host": "[::1]:8443"}), []) == "http://[::1]:8443"
    assert request_base(_request({"host": "a.example"}, scheme="wss"), []) == "https://a.example"


def test_forwarded_headers_count_only_from_a_trusted_proxy() -> None:
    untrusted = _request(FORWARDED)
    assert request_base(untrusted, []) == "http://10.0.0.9:8000"
    assert request_base(untrusted, ["10.1.0.0/16"]) == "http://10.0.0.9:8000"
    assert request_base(untrusted, ["10.0.0.0/24"]) == "https://billing.example.com"
    assert request_base(untrusted, ["10.0.0.5"]) == "https://billing.example.com"
    assert request_base(untrusted, ["*"]) == "https://billing.example.com"
    odd_port = _request({**FORWARDED, "x-forwarded-port": "8443"})
    assert request_base(odd_port, ["*"]) == "https://billing.example.com:8443"
    chain = _request({**FORWARDED, "x-forwarded-proto": "https, http"})
    assert request_base(chain, ["*"]) == "https://billing.example.com"
    # A forged host that is not a host name is ignored, even from the proxy.
    forged = _request({**FORWARDED, "x-forwarded-host": "a.example/evil"})
    assert request_base(forged, ["*"]) == "https://10.0.0.9:8000"
    # A unix-socket peer has no address: trusted only under "*".
    assert request_base(_request(FORWARDED, client=None), ["10.0.0.0/8"]) == (
        "http://10.0.0.9:8000"
    )


def test_public_base_prefers_public_url_and_falls_back_to_relative_links() -> None:
    request = _request({"host": "a.example"})
    assert public_base("https://b.example/", request, []) == "https://b.example"
    assert public_base(None, request, []) == "http://a.example"
    assert public_base(None, None, []) == ""


def test_public_url_and_trusted_proxies_are_checked_at_start_up() -> None:
    assert Settings(public_url="").public_url is None
    assert Settings(public_url="https://b.example/").public_url == "https://b.example"
    with pytest.raises(ValueError, match="public_url"):
        Settings(public_url="b.example")
    with pytest.raises(ValueError, match="trusted_proxies"):
        Settings(trusted_proxies=["not-an-address"])
