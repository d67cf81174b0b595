"""GraphQL over HTTP media types: which one a client accepts, and the status a body gets.

`application/graphql-response+json` lets the status code tell a request error (the
document does not parse or validate, the variables do not coerce: nothing ran) from an
execution result: the former answers 400 without a `data` entry. Under
`application/json`, which older clients expect, every GraphQL response is 200.
"""

from __future__ import annotations

from functools import lru_cache

from strawberry.http import GraphQLHTTPResponse

GRAPHQL_RESPONSE_JSON = "application/graphql-response+json"
JSON = "application/json"

# Wildcards get application/json: the one every client, old or new, can read.
_SUPPORTED = {
    GRAPHQL_RESPONSE_JSON: GRAPHQL_RESPONSE_JSON,
    JSON: JSON,
    "application/*": JSON,
    "*/*": JSON,
}


def _quality(parameters: list[str]) -> float:
    for parameter in parameters:
        name, _, value = parameter.partition("=")
        if name.strip().lower() == "q":
            try:
                return float(value.strip())
            except ValueError:
                return 0.0
    return 1.0


@lru_cache(maxsize=256)
def negotiate(accept: str | None) -> str | None:
    """The response media type for an Accept header, or None when it names none we
    serve. Highest quality wins; on a tie, the first listed. No header: JSON."""
    if accept is None or not accept.strip():
        return JSON
    best: str | None = None
    best_quality = 0.0
    for entry in accept.split(","):
        media_range, *parameters = entry.split(";")
        chosen = _SUPPORTED.get(media_range.strip().lower())
        if chosen is None:
            continue
        quality = _quality(parameters)
        if quality > best_quality:
            best, best_quality = chosen, quality
    return best


def is_request_error(body: GraphQLHTTPResponse) -> bool:
    """True when nothing was executed because of the request: no data, and errors that
    point at no field (graphql-core gives every execution error its field's path) and
    are not a masked failure of the server's own."""
    errors = body.get("errors")
    if body.get("data") is not None or not errors:
        return False
    for error in errors:
        if not isinstance(error, dict) or "path" in error:
            return False
        if (error.get("extensions") or {}).get("code") == "INTERNAL":
            return False
    return True


def status_for(body: GraphQLHTTPResponse, media_type: str) -> int:
    """200, or 400 for a request error under application/graphql-response+json (whose
    `data` entry is then dropped from `body`)."""
    if media_type == GRAPHQL_RESPONSE_JSON and is_request_error(body):
        body.pop("data", None)
        return 400
    return 200
