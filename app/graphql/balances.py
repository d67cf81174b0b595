"""creditsUpdated's stream, rendered once per change for all who ask the same thing.

A change reaches every subscriber of a team in one process as the same snapshot. The
subscribers asking the same document with the same variables would all compute the same
`data` (Credits does not depend on who asks), so the first one executes it and the
others reuse the result, and its JSON: a thousand widgets on one team cost one execution
and one encoding per change.

Over the websocket, balances after the first go out on a fast path: the operation's
task renders the snapshot (usually a cache hit) and sends the pre-encoded `next` message
itself, skipping Strawberry's per-result extension hooks, which cost more than the rest
of the delivery. The first state, and any result with errors, take the normal path.
"""

from __future__ import annotations

import inspect
import json
import uuid
from collections.abc import AsyncGenerator, Awaitable, Callable
from contextvars import ContextVar
from typing import Any, cast

from graphql import ExecutionResult, FieldNode, GraphQLField, GraphQLObjectType, OperationType
from graphql.pyutils import Path
from strawberry.subscriptions.protocols.graphql_transport_ws.handlers import Operation
from strawberry.subscriptions.protocols.graphql_transport_ws.types import Message

from app.billing import live
from app.graphql.execution import PlainObjects
from app.graphql.types import Credits
from app.kit.errors import NotFound

# The attribute of a shared root value that holds its renders.
_RENDERS = "_shared_renders"

# The subscription executor resolving the current root field (set while it resolves).
_executor: ContextVar[SharedRenders | None] = ContextVar("subscription_executor", default=None)

# The websocket operation the current task runs (set by the transport handler).
current_operation: ContextVar[Operation[Any, Any] | None] = ContextVar("ws_operation", default=None)


def shared_credits(snapshot: live.Snapshot) -> Credits:
    """The one Credits root for a snapshot, marked so its renders are shared."""
    root = snapshot.shared.get("credits")
    if not isinstance(root, Credits):
        root = Credits(view=snapshot.view)
        setattr(root, _RENDERS, {})
        snapshot.shared["credits"] = root
    return root


def credits_stream(
    team_id: uuid.UUID,
    user_id: uuid.UUID | None,
    still_allowed: Callable[[], Awaitable[bool]] | None = None,
) -> AsyncGenerator[Credits, None]:
    """The team's credits now, then the newest after each change; ends when access does.

    `still_allowed`, asked before each change is sent, ends the stream with NOT_FOUND once
    it says no (a team API key revoked or expired since the stream began)."""
    return _stream(team_id, user_id, _executor.get(), still_allowed)


async def _stream(
    team_id: uuid.UUID,
    user_id: uuid.UUID | None,
    executor: SharedRenders | None,
    still_allowed: Callable[[], Awaitable[bool]] | None,
) -> AsyncGenerator[Credits, None]:
    operation = current_operation.get()
    first = True
    async with live.follow(team_id, user_id) as follower:
        while True:
            try:
                snapshot, delivery = await follower.next()
            except live.Finished:
                return
            if still_allowed is not None and not await still_allowed():
                raise NotFound()
            # Read by the websocket handler to stamp the message with commit times.
            live.delivering.set(delivery)
            root = shared_credits(snapshot)
            if not first and operation is not None and executor is not None:
                message = await _rendered_message(executor, root, operation.id, delivery)
                if message is not None:
                    await operation.send_operation_message(cast("Message", message))
                    continue
            first = False
            yield root


async def _rendered_message(
    executor: SharedRenders, root: Credits, operation_id: str, delivery: live.Delivery
) -> Encoded | None:
    """The whole `next` message for this root, or None when it needs the normal path."""
    result = executor.build_per_event_executor(root).execute_operation(False)
    if inspect.isawaitable(result):
        result = await result
    if not isinstance(result, ExecutionResult) or result.errors or result.data is None:
        return None
    return _encoded_next(operation_id, result.data, {}, delivery)


class _Rendered:
    """Stands in for a per-event executor when the event was already rendered."""

    __slots__ = ("result",)

    def __init__(self, result: ExecutionResult) -> None:
        self.result = result

    def execute_operation(self, serially: bool | None = None) -> ExecutionResult:
        # A fresh result object each time: strawberry annotates it per operation.
        return ExecutionResult(self.result.data, self.result.errors)


class SharedRenders(PlainObjects):
    """Executes a shared subscription event once per operation and variables."""

    _render_key: tuple[int, str] | None = None

    def build_resolve_info(
        self,
        field_def: GraphQLField,
        field_nodes: list[FieldNode],
        parent_type: GraphQLObjectType,
        path: Path,
    ) -> Any:
        if path.prev is None and self.operation.operation is OperationType.SUBSCRIPTION:
            # The subscription's root field: its stream renders later events with us.
            _executor.set(self)
        return super().build_resolve_info(field_def, field_nodes, parent_type, path)

    def build_per_event_executor(self, payload: Any) -> Any:
        renders: dict[tuple[int, str], tuple[object, ExecutionResult]] | None = getattr(
            payload, _RENDERS, None
        )
        if renders is None:
            return super().build_per_event_executor(payload)
        key = self._render_key
        if key is None:
            # Once per subscription: the operation node and the variables never change.
            values = json.dumps(self.variable_values.coerced, sort_keys=True, default=str)
            key = self._render_key = (id(self.operation), values)
        hit = renders.get(key)
        if hit is not None:
            return _Rendered(hit[1])
        executor = super().build_per_event_executor(payload)
        assert isinstance(executor, SharedRenders)
        executor._render_key = key
        return executor

    def execute_operation(self, serially: bool | None = None) -> Any:
        renders: dict[tuple[int, str], tuple[object, ExecutionResult]] | None = getattr(
            self.root_value, _RENDERS, None
        )
        key = self._render_key
        if renders is None or key is None:
            return super().execute_operation(serially)
        result = super().execute_operation(serially)

        def keep(done: Any) -> Any:
            if isinstance(done, ExecutionResult):
                # The operation node is kept with it, so its id cannot be reused meanwhile.
                renders[key] = (self.operation, done)
                return ExecutionResult(done.data, done.errors)
            return done

        if self.is_awaitable(result):

            async def stored() -> Any:
                return keep(await result)

            awaiting: Awaitable[Any] = stored()
            return awaiting
        return keep(result)


class Encoded(dict[str, Any]):
    """A `next` message whose JSON text was assembled from parts shared by its subscribers."""

    text: str


def _json(value: object) -> str:
    return json.dumps(value, separators=(",", ":"))


def _encoded_next(
    operation_id: str, data: dict[str, Any], extensions: dict[str, Any], delivery: live.Delivery
) -> Encoded:
    extensions = {
        **extensions,
        "committedAt": delivery.committed_at,
        "pendingSince": delivery.pending_since,
    }
    message = Encoded(
        id=operation_id, type="next", payload={"data": data, "extensions": extensions}
    )
    texts = delivery.shared.setdefault("json", {})
    assert isinstance(texts, dict)
    known = texts.get(id(data))
    if known is None or known[0] is not data:
        # The data object is kept with its text, so its id cannot be reused meanwhile.
        known = texts[id(data)] = (data, _json(data))
    message.text = (
        f'{{"id":{_json(operation_id)},"type":"next",'
        f'"payload":{{"data":{known[1]},"extensions":{_json(extensions)}}}}}'
    )
    return message


def stamp(message: Message) -> Message:
    """A `next` message of a balance with its commit times; other messages unchanged."""
    if message["type"] != "next" or isinstance(message, Encoded):
        return message
    delivery = live.delivering.get()
    if delivery is None or delivery.committed_at is None:
        return message
    payload = message["payload"]
    data = payload["data"]
    if payload.keys() - {"data", "extensions"} or data is None:
        # Errors: a plain message, encoded the usual way.
        extensions = {
            **(payload.get("extensions") or {}),
            "committedAt": delivery.committed_at,
            "pendingSince": delivery.pending_since,
        }
        return {
            "id": message["id"],
            "type": "next",
            "payload": {**payload, "extensions": extensions},
        }
    encoded = _encoded_next(message["id"], data, dict(payload.get("extensions") or {}), delivery)
    return cast("Message", encoded)
