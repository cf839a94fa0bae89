#!/usr/bin/env python3
"""An echo component (XEP-0114) on slixmpp's ComponentXMPP, which the
interoperability tests run against Sigil's component listener.

    slixmpp_component.py --jid echo.localhost --secret SECRET \
        --host 127.0.0.1 --port 5347 --count 1

It connects, completes the handshake and prints

    {"event": "ready", "jid": DOMAIN}

then answers each chat or normal message with a body by a chat message
from the address it was sent to, back to its sender, whose body is
"echo: " and the body received, printing

    {"event": "message", "from": SENDER, "to": ADDRESS, "body": BODY}

After --count messages it closes its stream and exits. Every result is
one JSON object on a line of standard output; a stream error is printed
as {"event": "stream-error", "condition": CONDITION, "text": TEXT-OR-NULL}.

Exit status: 0 on success; 1 on any failure (the handshake refused, the
stream ended early, the time limit), with the reason on standard error;
2 on bad arguments.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys

try:
    import slixmpp
    from slixmpp.componentxmpp import ComponentXMPP
except ImportError:  # pragma: no cover - reported to the caller
    print(
        "slixmpp is not installed: run scripts/ensure-python-peers",
        file=sys.stderr,
    )
    sys.exit(4)


class Failure(Exception):
    """A failure reported on standard error."""


def emit(event: str, **fields: object) -> None:
    print(json.dumps({"event": event, **fields}), flush=True)


class Echo(ComponentXMPP):
    """Echoes messages; its outcome is a future rather than events."""

    def __init__(self, args: argparse.Namespace) -> None:
        super().__init__(args.jid, args.secret, args.host, args.port)
        self.args = args
        loop = asyncio.get_running_loop()
        self.ready: asyncio.Future[None] = loop.create_future()
        self.finished: asyncio.Future[None] = loop.create_future()
        self.echoed = 0
        self.add_event_handler("session_start", self._on_session_start)
        self.add_event_handler("stream_error", self._on_stream_error)
        self.add_event_handler("disconnected", self._on_disconnected)
        self.add_event_handler("connection_failed", self._on_connection_failed)
        self.add_event_handler("message", self._on_message)

    def _fail(self, reason: str) -> None:
        for future in (self.ready, self.finished):
            if not future.done():
                future.set_exception(Failure(reason))

    def _on_session_start(self, _event: object) -> None:
        emit("ready", jid=self.boundjid.full)
        if not self.ready.done():
            self.ready.set_result(None)

    def _on_stream_error(self, error: object) -> None:
        condition = error["condition"] or "unknown"  # type: ignore[index]
        text = error["text"] or None  # type: ignore[index]
        emit("stream-error", condition=condition, text=text)
        self._fail(f"stream error: {condition}")

    def _on_disconnected(self, reason: object) -> None:
        self._fail(f"disconnected: {reason}")

    def _on_connection_failed(self, error: object) -> None:
        self._fail(f"connection failed: {error}")

    def _on_message(self, message: slixmpp.Message) -> None:
        if message["type"] not in ("chat", "normal") or not message["body"]:
            return
        emit(
            "message",
            **{
                "from": message["from"].full,
                "to": message["to"].full,
                "body": message["body"],
            },
        )
        self.send_message(
            mto=message["from"],
            mfrom=message["to"],
            mbody=f"echo: {message['body']}",
            mtype="chat",
        )
        self.echoed += 1
        if self.echoed >= self.args.count and not self.finished.done():
            self.finished.set_result(None)


async def run(args: argparse.Namespace) -> None:
    component = Echo(args)
    component.connect()
    try:
        await asyncio.wait_for(component.ready, args.time_limit)
        await asyncio.wait_for(component.finished, args.time_limit)
    except asyncio.TimeoutError:
        raise Failure(f"no result within {args.time_limit} s") from None
    finally:
        if component.transport is not None:
            try:
                await asyncio.wait_for(component.disconnect(wait=5.0), 10.0)
            except (asyncio.TimeoutError, Exception):  # noqa: BLE001 - best effort
                component.abort()


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--jid", required=True, help="the component's domain")
    parser.add_argument("--secret", required=True, help="the component's shared secret")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--count", type=int, default=1, help="messages to echo, then exit")
    parser.add_argument("--time-limit", type=float, default=30.0)
    parser.add_argument("--debug", action="store_true", help="slixmpp's debug log on stderr")
    return parser.parse_args(argv)


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.debug else logging.CRITICAL,
        format="%(levelname)-8s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        asyncio.run(run(args))
    except Failure as failure:
        print(f"slixmpp_component: {failure}", file=sys.stderr)
        return 1
    except OSError as error:
        print(f"slixmpp_component: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
