#!/usr/bin/env python3
"""A slixmpp client that the interoperability tests drive against Sigil.

    slixmpp_client.py --jid alice@localhost --password secret \
        --host 127.0.0.1 --port 5222 --mode starttls --mechanism SCRAM-SHA-256 \
        --ca server.crt ACTION [ACTION OPTIONS]

    slixmpp_client.py --jid alice@localhost --mechanism EXTERNAL \
        --cert laptop.crt --key laptop.key --port 5222 --ca server.crt login

Actions:
    login                            log in, send initial presence, log out
    send --to JID --body TEXT        send one chat message
    receive --count N --timeout S    print N received messages
    roster-add --contact JID --name NAME
                                     add a roster item and print the push
    disco                            print the server's disco#info
    private [--store TEXT]           XEP-0049 (slixmpp's xep_0049): store TEXT,
                                     then print what is stored
    vcard-set --fn NAME --photo B64  XEP-0054 (slixmpp's xep_0054): publish a
                                     vCard, go online, print the XEP-0153 photo
                                     hash the server put in the own presence
    vcard-get --of JID [--vcard4]    print the FN of JID's vCard (as vCard4:
                                     a raw XEP-0292 IQ)
    leave --status TEXT              go online, then unavailable with TEXT
    last --of JID                    XEP-0012 (slixmpp's xep_0012): print
                                     JID's last activity
    items                            print the server's disco#items
    commands [--node NODE] [--script JSON]
                                     XEP-0050 (slixmpp's xep_0050): print the
                                     server's commands (get_commands()), then
                                     run NODE (send_command()) and print its
                                     status, notes and form fields; then each
                                     step of the JSON list [{"node": N,
                                     "fields": {VAR: [VALUES]}}]: execute N,
                                     print it, submit its form with those
                                     values (action complete), print that
    converse --to JID --body TEXT --timeout S
                                     send one chat message and print the
                                     first message that comes back from JID

Actions with a second account, PEER (--peer JID --peer-password PW), logged
in from the same process (its own session, its own "bound" line):

    carbons --peer JID --peer-password PW
                                     XEP-0280 (slixmpp's xep_0280: enable()
                                     and its carbon_received / carbon_sent
                                     events): a second session of the account
                                     logs in, both enable carbons; PEER writes
                                     to the first session's full JID and the
                                     first session to PEER, each once plainly,
                                     once with <private xmlns='urn:xmpp:carbons:2'/>
                                     and once more plainly. Prints each message
                                     as delivered, each carbon the second
                                     session gets, then a "carbons-done" line
    exchange --peer JID --peer-password PW --count N [--prefix TEXT]
                                     N chat messages PREFIX0 .. PREFIX(N-1),
                                     the even ones from the account to PEER's
                                     bare JID, the odd ones back, each
                                     awaited; prints each as delivered, with
                                     every XEP-0359 stanza id on it
    csi --peer JID --peer-password PW
                                     XEP-0352 (slixmpp's xep_0352:
                                     send_inactive(), send_active()): the
                                     account subscribes to PEER (PEER's
                                     slixmpp authorizes and subscribes back by
                                     its default roster policy), goes
                                     inactive; PEER shows away, xa, dnd and
                                     writes a message; the account goes active
                                     again. Prints what it got from PEER in
                                     each state

Actions on the account's own archive (XEP-0313):

    mam --page N [--with JID] [--reverse]
                                     slixmpp's xep_0313 retrieve(iterator=True)
                                     (RSM pages of N, backwards with
                                     --reverse): prints each page
    mam-messages --page N [--with JID]
                                     slixmpp's xep_0313 iterate(): prints each
                                     archived message
    mam-fields                       slixmpp's xep_0313 get_fields(): prints
                                     the query form's fields
    mam-prefs [--default D] [--always JID]... [--never JID]...
                                     XEP-0441 (slixmpp's xep_0441): with any
                                     option, sets the archiving preferences
                                     (set_preferences(); default D "always"
                                     unless given); then prints them
                                     (get_preferences())

slixmpp's plugins read the first stanza id only, <fin complete='true'/>
as a string or not at all (1.8), and a hidden form field's value as a
list: the actions read every <stanza-id/> and the complete attribute from
the XML, and print the FORM_TYPE as a list of values.

Every result is one JSON object on a line of standard output. After logging
in (resource bound, initial presence sent where the action sends one, and
the server has answered a ping sent behind it, so it has handled everything
before), every action first prints

    {"event": "bound", "jid": FULL-JID, "mechanism": SASL-MECHANISM, "tls": TLS-VERSION}

A stream error from the server, at any time, is printed as

    {"event": "stream-error", "condition": CONDITION, "text": TEXT-OR-NULL}

Exit status: 0 on success; 1 on any failure (timeout, connection error,
error reply), with the reason on standard error; 2 on bad arguments; 3 when
authentication fails ("authentication failed: CONDITION" on standard error).

Certificates are verified: --ca FILE trusts FILE (the test server's
self-signed server.crt); --insecure turns verification off instead.
The name checked is always the JID's domain.

--cert FILE --key FILE present a client certificate (PEM certificate and
PEM private key). --password is required except with --mechanism EXTERNAL,
whose <auth/> slixmpp sends as "=" (an empty initial response: no authzid).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import inspect
import json
import logging
import ssl
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

try:
    import slixmpp
    from slixmpp.exceptions import IqError, IqTimeout
    from slixmpp.stanza import StreamError
    from slixmpp.xmlstream import ElementBase
except ImportError:  # pragma: no cover - reported to the caller
    print(
        "slixmpp is not installed: run scripts/ensure-python-peers",
        file=sys.stderr,
    )
    sys.exit(4)

DELAY_NS = "urn:xmpp:delay"
UPDATE_NS = "vcard-temp:x:update"
VCARD4_NS = "urn:ietf:params:xml:ns:vcard-4.0"
SID_NS = "urn:xmpp:sid:0"
# How long a client waits to be sure nothing more comes.
QUIET = 1.0
EXIT_FAILURE = 1
EXIT_AUTH_FAILED = 3


class Failure(Exception):
    """A failure reported on standard error with an exit status."""

    def __init__(self, message: str, status: int = EXIT_FAILURE) -> None:
        super().__init__(message)
        self.status = status


def emit(event: str, **fields: object) -> None:
    print(json.dumps({"event": event, **fields}), flush=True)


class Note(ElementBase):
    """A private XML element (XEP-0049) of the tests' own namespace."""

    name = "note"
    namespace = "urn:example:sigil-interop"
    plugin_attrib = "sigil_note"
    interfaces = {"body"}
    sub_interfaces = {"body"}


class Client(slixmpp.ClientXMPP):
    """A client whose connection outcome is a future rather than events."""

    def __init__(self, args: argparse.Namespace) -> None:
        super().__init__(args.jid, args.password or "")
        self.args = args
        # The last stream error the server sent, if any.
        self.stream_error: str | None = None
        self.session: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        # None: the stream ended.
        self.messages: asyncio.Queue[slixmpp.Message | None] = asyncio.Queue()
        self.roster_pushes: asyncio.Queue[slixmpp.Iq] = asyncio.Queue()
        # Other sessions this process logged in (see companion()).
        self.companions: list[Client] = []

        self.register_plugin("xep_0030")  # disco
        self.register_plugin("xep_0199")  # ping
        self.register_plugin("xep_0012")  # last activity
        self.register_plugin("xep_0049")  # private XML storage
        self.register_plugin("xep_0054")  # vcard-temp
        self.register_plugin("xep_0280")  # message carbons
        self.register_plugin("xep_0313")  # message archive management
        self.register_plugin("xep_0352")  # client state indication
        self.register_plugin("xep_0359")  # stanza ids
        self.register_plugin("xep_0441")  # archiving preferences
        self.register_plugin("xep_0004")  # data forms
        self.register_plugin("xep_0050")  # ad-hoc commands
        self.plugin["xep_0049"].register(Note)
        # Own presence as the server reflects it.
        self.own_presence: asyncio.Queue[slixmpp.Presence] = asyncio.Queue()

        # Only the named mechanism (ANY: slixmpp's own choice, trying the
        # next one after a failure, as poezio does), and only over TLS.
        mechanisms = self.plugin["feature_mechanisms"]
        if args.mechanism != "ANY":
            mechanisms.use_mech = args.mechanism
        mechanisms.unencrypted_plain = False
        mechanisms.unencrypted_scram = False

        # Exactly the connection method asked for: no fallback to the other.
        self.enable_plaintext = False
        self.enable_starttls = args.mode == "starttls"
        self.enable_direct_tls = args.mode == "direct-tls"

        if args.insecure:
            context = ssl.create_default_context()
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
            self.ssl_context = context
        elif args.ca is not None:
            self.ca_certs = Path(args.ca)

        if args.cert is not None:
            # Loaded into the TLS context by get_ssl_context() before every
            # handshake. Load once here as well, so a bad file fails loudly
            # (slixmpp only logs it at debug level and carries on without).
            ssl.create_default_context().load_cert_chain(args.cert, args.key)
            self.certfile = args.cert
            self.keyfile = args.key

        self.add_event_handler("connected", self._on_connected)
        self.add_event_handler("session_start", self._on_session_start)
        self.add_event_handler("failed_auth", self._on_failed_auth)
        self.add_event_handler("failed_all_auth", self._on_failed_all_auth)
        self.add_event_handler("connection_failed", self._on_connection_failed)
        self.add_event_handler("ssl_invalid_chain", self._on_invalid_chain)
        self.add_event_handler("stream_error", self._on_stream_error)
        self.add_event_handler("disconnected", self._on_disconnected)
        self.add_event_handler("message", self._on_message)
        self.add_event_handler("roster_update", self._on_roster_update)
        self.add_event_handler("presence_available", self._on_presence)

    def _fail(self, failure: Failure) -> None:
        if not self.session.done():
            self.session.set_exception(failure)

    def _on_session_start(self, _event: object) -> None:
        if not self.session.done():
            self.session.set_result(None)

    def _on_connected(self, _event: object) -> None:
        emit("connected")

    def _on_failed_auth(self, stanza: object) -> None:
        condition = "unknown"
        try:
            condition = stanza["condition"] or condition  # type: ignore[index]
        except (KeyError, TypeError):
            pass
        if self.args.mechanism == "ANY":
            # slixmpp goes on with the next mechanism on the same stream.
            emit("auth-failure", condition=condition)
            return
        self._fail(Failure(f"authentication failed: {condition}", EXIT_AUTH_FAILED))

    def _on_failed_all_auth(self, _event: object) -> None:
        self._fail(
            Failure(
                f"authentication failed: no usable mechanism ({self.args.mechanism} wanted)",
                EXIT_AUTH_FAILED,
            )
        )

    def _on_connection_failed(self, error: object) -> None:
        self._fail(Failure(f"connection failed: {error}"))

    def _on_invalid_chain(self, error: object) -> None:
        self._fail(Failure(f"server certificate rejected: {error}"))
        self.abort()

    def _on_stream_error(self, error: StreamError) -> None:
        condition = error["condition"] or "unknown"
        text = error["text"] or None
        emit("stream-error", condition=condition, text=text)
        self.stream_error = f"{condition}" + (f" ({text})" if text else "")
        self._fail(Failure(f"stream error: {self.stream_error}"))

    def _on_disconnected(self, reason: object) -> None:
        self._fail(Failure(f"disconnected before the session started: {reason}"))
        self.messages.put_nowait(None)

    def _on_message(self, message: slixmpp.Message) -> None:
        if message["type"] in ("chat", "normal") and message["body"]:
            self.messages.put_nowait(message)

    def _on_presence(self, presence: slixmpp.Presence) -> None:
        if presence["from"] == self.boundjid:
            self.own_presence.put_nowait(presence)

    def _on_roster_update(self, iq: slixmpp.Iq) -> None:
        if iq["type"] == "set":
            self.roster_pushes.put_nowait(iq)

    def tls_version(self) -> str | None:
        if self.transport is None:
            return None
        ssl_object = self.transport.get_extra_info("ssl_object")
        return ssl_object.version() if ssl_object is not None else None

    async def barrier(self) -> None:
        """Returns once the server has handled every stanza sent before."""
        await self.plugin["xep_0199"].ping(jid=self.boundjid.domain, timeout=self.args.iq_timeout)

    async def login(self, presence: bool) -> None:
        if "address" in inspect.signature(self.connect).parameters:
            # slixmpp before 1.9 (Debian's 1.8.3, poezio's): an address
            # tuple and the TLS method as arguments.
            direct = self.args.mode == "direct-tls"
            self.connect(
                (self.args.host, self.args.port),
                use_ssl=direct,
                force_starttls=not direct,
                disable_starttls=direct,
            )
        else:
            self.connect(self.args.host, self.args.port)
        await self.session
        if presence:
            self.send_presence()
        await self.barrier()
        mechanism = self.plugin["feature_mechanisms"].mech
        emit(
            "bound",
            jid=self.boundjid.full,
            mechanism=mechanism.name if mechanism is not None else None,
            tls=self.tls_version(),
        )

    async def logout(self) -> None:
        # Sends what is queued, closes the stream and waits (bounded) for
        # the server to close its own.
        await self.disconnect(wait=5.0)

    async def companion(self, jid: str, password: str | None) -> Client:
        """Logs in another session (of this account or another one), with
        initial presence; run() logs it out at the end."""
        args = argparse.Namespace(**{**vars(self.args), "jid": jid, "password": password})
        other = Client(args)
        self.companions.append(other)
        await other.login(presence=True)
        return other


async def action_login(client: Client, _args: argparse.Namespace) -> None:
    await client.login(presence=True)


async def action_send(client: Client, args: argparse.Namespace) -> None:
    await client.login(presence=False)
    client.send_message(mto=args.to, mbody=args.body, mtype="chat")
    # The server answers the ping only after it has routed the message.
    await client.barrier()
    emit("sent", to=args.to, body=args.body)


async def action_receive(client: Client, args: argparse.Namespace) -> None:
    await client.login(presence=True)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + args.timeout
    received = 0
    while received < args.count:
        remaining = deadline - loop.time()
        try:
            message = await asyncio.wait_for(client.messages.get(), max(remaining, 0))
        except asyncio.TimeoutError:
            raise Failure(
                f"timed out after {args.timeout} s: received {received} of {args.count} messages"
            ) from None
        if message is None:
            cause = f" (stream error: {client.stream_error})" if client.stream_error else ""
            raise Failure(
                f"the stream ended after {received} of {args.count} messages{cause}"
            )
        delay = message.xml.find(f"{{{DELAY_NS}}}delay")
        emit(
            "message",
            **{
                "from": message["from"].full,
                "to": message["to"].full,
                "type": message["type"],
                "body": message["body"],
                "delay": delay is not None,
                "stamp": delay.get("stamp") if delay is not None else None,
            },
        )
        received += 1


async def action_roster_add(client: Client, args: argparse.Namespace) -> None:
    await client.login(presence=False)
    # Roster pushes go to interested resources: those that fetched the roster.
    await client.get_roster(timeout=args.iq_timeout)
    await client.update_roster(args.contact, name=args.name, timeout=args.iq_timeout)
    try:
        push = await asyncio.wait_for(client.roster_pushes.get(), args.iq_timeout)
    except asyncio.TimeoutError:
        raise Failure("the roster set succeeded but no roster push arrived") from None
    items = []
    for jid, item in push["roster"]["items"].items():
        items.append(
            {
                "jid": str(jid),
                "name": item["name"],
                "subscription": item["subscription"],
                "ask": item["ask"] or None,
                "groups": sorted(item["groups"]),
            }
        )
    emit("roster-push", **{"from": push["from"].full or None, "items": items})


async def action_disco(client: Client, args: argparse.Namespace) -> None:
    await client.login(presence=False)
    iq = await client.plugin["xep_0030"].get_info(
        jid=client.boundjid.domain, local=False, cached=False, timeout=args.iq_timeout
    )
    info = iq["disco_info"]
    identities = [
        {"category": category, "type": kind, "lang": lang, "name": name}
        for (category, kind, lang, name) in info["identities"]
    ]
    emit("disco", jid=iq["from"].full, identities=identities, features=sorted(info["features"]))


async def action_private(client: Client, args: argparse.Namespace) -> None:
    await client.login(presence=False)
    storage = client.plugin["xep_0049"]
    if args.store is not None:
        note = Note()
        note["body"] = args.store
        await storage.store(note, timeout=args.iq_timeout)
    iq = await storage.retrieve("sigil_note", timeout=args.iq_timeout)
    emit("private", text=iq["private"]["sigil_note"]["body"])


async def action_vcard_set(client: Client, args: argparse.Namespace) -> None:
    await client.login(presence=False)
    vcards = client.plugin["xep_0054"]
    vcard = vcards.make_vcard()
    vcard["FN"] = args.fn
    image = base64.b64decode(args.photo)
    vcard["PHOTO"]["TYPE"] = "image/png"
    vcard["PHOTO"]["BINVAL"] = image
    await vcards.publish_vcard(vcard, timeout=args.iq_timeout)
    client.send_presence()
    try:
        own = await asyncio.wait_for(client.own_presence.get(), args.iq_timeout)
    except asyncio.TimeoutError:
        raise Failure("the own presence did not come back") from None
    photo = own.xml.find(f"{{{UPDATE_NS}}}x/{{{UPDATE_NS}}}photo")
    emit(
        "vcard-set",
        photo=photo.text if photo is not None else None,
        expected=hashlib.sha1(image).hexdigest(),
    )


async def action_vcard_get(client: Client, args: argparse.Namespace) -> None:
    await client.login(presence=False)
    if args.vcard4:
        iq = client.make_iq_get(ito=args.of)
        iq.xml.append(ET.Element(f"{{{VCARD4_NS}}}vcard"))
        reply = await iq.send(timeout=args.iq_timeout)
        name = reply.xml.find(f"{{{VCARD4_NS}}}vcard/{{{VCARD4_NS}}}fn/{{{VCARD4_NS}}}text")
        photo = reply.xml.find(f"{{{VCARD4_NS}}}vcard/{{{VCARD4_NS}}}photo/{{{VCARD4_NS}}}uri")
        emit(
            "vcard",
            fn=name.text if name is not None else None,
            photo=photo.text if photo is not None else None,
        )
        return
    reply = await client.plugin["xep_0054"].get_vcard(args.of, timeout=args.iq_timeout)
    vcard = reply["vcard_temp"]
    emit("vcard", fn=vcard["FN"], photo=vcard["PHOTO"]["TYPE"] or None)


async def action_leave(client: Client, args: argparse.Namespace) -> None:
    await client.login(presence=True)
    client.send_presence(ptype="unavailable", pstatus=args.status)
    await client.barrier()
    emit("left", status=args.status)


async def action_last(client: Client, args: argparse.Namespace) -> None:
    await client.login(presence=False)
    iq = await client.plugin["xep_0012"].get_last_activity(args.of, timeout=args.iq_timeout)
    last = iq["last_activity"]
    emit("last", seconds=int(last["seconds"]), status=last["status"] or None)


async def action_items(client: Client, args: argparse.Namespace) -> None:
    await client.login(presence=False)
    iq = await client.plugin["xep_0030"].get_items(
        jid=client.boundjid.domain, local=False, timeout=args.iq_timeout
    )
    items = [
        {"jid": str(jid), "node": node, "name": name}
        for (jid, node, name) in iq["disco_items"]["items"]
    ]
    emit("items", jid=iq["from"].full, items=items)


def emit_command(event: str, reply: slixmpp.Iq) -> None:
    """Prints an ad-hoc command reply: status, notes, form fields."""
    command = reply["command"]
    form = command["form"]
    fields = [
        {"var": var, "type": field["type"], "label": field["label"], "values": field.get_value(convert=False)}
        for (var, field) in form.get_fields().items()
    ]
    emit(
        event,
        node=command["node"],
        status=command["status"],
        sessionid=command["sessionid"] or None,
        notes=[{"type": kind, "text": text} for (kind, text) in command["notes"]],
        form_type=form["type"] or None,
        fields=fields,
    )


async def action_commands(client: Client, args: argparse.Namespace) -> None:
    await client.login(presence=False)
    server = client.boundjid.domain
    adhoc = client.plugin["xep_0050"]
    iq = await adhoc.get_commands(jid=server, local=False, timeout=args.iq_timeout)
    commands = [
        {"jid": str(jid), "node": node, "name": name}
        for (jid, node, name) in iq["disco_items"]["items"]
    ]
    emit("commands", node=iq["disco_items"]["node"], commands=commands)
    steps = [{"node": args.node}] if args.node is not None else []
    if args.script is not None:
        steps.extend(json.loads(args.script))
    for step in steps:
        reply = await adhoc.send_command(server, step["node"], timeout=args.iq_timeout)
        emit_command("command", reply)
        values = step.get("fields")
        if values is None:
            continue
        command = reply["command"]
        if command["status"] != "executing":
            raise Failure(f"{step['node']}: {command['status']}, not a form to submit")
        form = client.plugin["xep_0004"].make_form(ftype="submit")
        for var, value in values.items():
            form.add_field(var=var, value=value)
        reply = await adhoc.send_command(
            server,
            step["node"],
            action="complete",
            sessionid=command["sessionid"],
            payload=form,
            timeout=args.iq_timeout,
        )
        emit_command("completed", reply)


async def action_converse(client: Client, args: argparse.Namespace) -> None:
    await client.login(presence=True)
    client.send_message(mto=args.to, mbody=args.body, mtype="chat")
    emit("sent", to=args.to, body=args.body)
    peer = slixmpp.JID(args.to).bare
    loop = asyncio.get_running_loop()
    deadline = loop.time() + args.timeout
    while True:
        remaining = deadline - loop.time()
        try:
            message = await asyncio.wait_for(client.messages.get(), max(remaining, 0))
        except asyncio.TimeoutError:
            raise Failure(f"timed out after {args.timeout} s: no answer from {peer}") from None
        if message is None:
            raise Failure(f"the stream ended before {peer} answered")
        if message["from"].bare != peer:
            continue
        emit(
            "message",
            **{
                "from": message["from"].full,
                "to": message["to"].full,
                "type": message["type"],
                "body": message["body"],
                "delay": message.xml.find(f"{{{DELAY_NS}}}delay") is not None,
            },
        )
        return



async def next_message(client: Client, timeout: float, what: str) -> slixmpp.Message:
    """The next chat or normal message with a body that `client` gets."""
    try:
        message = await asyncio.wait_for(client.messages.get(), timeout)
    except asyncio.TimeoutError:
        raise Failure(f"timed out after {timeout} s waiting for {what}") from None
    if message is None:
        raise Failure(f"the stream of {client.boundjid.full} ended before {what}")
    return message


def stanza_ids(message: slixmpp.Message) -> list[dict[str, str | None]]:
    """Every XEP-0359 stanza id on `message` (slixmpp's xep_0359 reads
    only the first one)."""
    return [
        {"by": element.get("by"), "id": element.get("id")}
        for element in message.xml.findall(f"{{{SID_NS}}}stanza-id")
    ]


def delivered(message: slixmpp.Message) -> None:
    emit(
        "delivered",
        **{
            "from": message["from"].full,
            "to": message["to"].full,
            "body": message["body"],
            "stanza_ids": stanza_ids(message),
        },
    )


async def action_carbons(client: Client, args: argparse.Namespace) -> None:
    await client.login(presence=True)
    first = client
    second = await client.companion(args.jid, args.password)
    peer = await client.companion(args.peer, args.peer_password)
    carbons: asyncio.Queue[tuple[str, slixmpp.Message]] = asyncio.Queue()
    second.add_event_handler("carbon_received", lambda m: carbons.put_nowait(("received", m)))
    second.add_event_handler("carbon_sent", lambda m: carbons.put_nowait(("sent", m)))
    for session in (first, second):
        await session.plugin["xep_0280"].enable(timeout=args.iq_timeout)
    emit("carbons-enabled", first=first.boundjid.full, second=second.boundjid.full)

    steps = [
        (peer, first, "to first"),
        (first, peer, "from first"),
        (peer, first, "private to first"),
        (first, peer, "private from first"),
        (peer, first, "last to first"),
        (first, peer, "last from first"),
    ]
    for sender, recipient, body in steps:
        message = sender.make_message(mto=recipient.boundjid.full, mbody=body, mtype="chat")
        if body.startswith("private"):
            message.enable("carbon_private")
        message.send()
        got = await next_message(recipient, args.iq_timeout, repr(body))
        if got["body"] != body:
            raise Failure(f"{recipient.boundjid.full} got {got['body']!r}, not {body!r}")
        delivered(got)

    # The copies of the last two messages are the last that can come.
    loop = asyncio.get_running_loop()
    deadline = loop.time() + args.iq_timeout
    seen: set[str] = set()
    while True:
        if {"last to first", "last from first"} <= seen:
            timeout = QUIET
        else:
            timeout = max(deadline - loop.time(), 0)
        try:
            direction, wrapper = await asyncio.wait_for(carbons.get(), timeout)
        except asyncio.TimeoutError:
            break
        inner = wrapper[f"carbon_{direction}"]
        seen.add(inner["body"])
        emit(
            "carbon",
            direction=direction,
            **{
                "wrapper_from": wrapper["from"].full,
                "from": inner["from"].full,
                "to": inner["to"].full,
                "body": inner["body"],
            },
        )
    # Nothing but carbons reached the second session.
    emit("carbons-done", second_messages=second.messages.qsize())


async def action_exchange(client: Client, args: argparse.Namespace) -> None:
    await client.login(presence=True)
    peer = await client.companion(args.peer, args.peer_password)
    for n in range(args.count):
        sender, recipient = (client, peer) if n % 2 == 0 else (peer, client)
        body = f"{args.prefix}{n}"
        sender.send_message(mto=recipient.boundjid.bare, mbody=body, mtype="chat")
        got = await next_message(recipient, args.iq_timeout, repr(body))
        if got["body"] != body:
            raise Failure(f"{recipient.boundjid.full} got {got['body']!r}, not {body!r}")
        delivered(got)


def archived(message: slixmpp.Message) -> dict[str, object]:
    """One MAM result, as slixmpp's xep_0313 (and xep_0297) read it."""
    result = message["mam_result"]
    forwarded = result["forwarded"]
    inner = forwarded["stanza"]
    stamp = forwarded["delay"]["stamp"]
    return {
        "id": result["id"],
        "queryid": result["queryid"],
        "from": inner["from"].full,
        "to": inner["to"].full,
        "body": inner["body"],
        "stamp": stamp.isoformat() if stamp else None,
    }


async def action_mam(client: Client, args: argparse.Namespace) -> None:
    await client.login(presence=False)
    pages = client.plugin["xep_0313"].retrieve(
        with_jid=slixmpp.JID(args.with_jid) if args.with_jid else None,
        iterator=True,
        reverse=args.reverse,
        rsm={"max": args.page},
    )
    pages.iq_options = {"timeout": args.iq_timeout}
    number = 0
    async for page in pages:
        fin = page["mam_fin"]
        emit(
            "mam-page",
            number=number,
            complete=fin.xml.get("complete") in ("true", "1"),
            first=fin["rsm"]["first"] or None,
            last=fin["rsm"]["last"] or None,
            count=fin["rsm"]["count"] or None,
            results=[archived(message) for message in page["mam"]["results"]],
        )
        number += 1
        if number > 50:
            raise Failure("more than 50 pages: the paging does not end")
    emit("mam-done", pages=number)


async def action_mam_messages(client: Client, args: argparse.Namespace) -> None:
    await client.login(presence=False)
    count = 0
    async for message in client.plugin["xep_0313"].iterate(
        with_jid=slixmpp.JID(args.with_jid) if args.with_jid else None,
        rsm={"max": args.page},
    ):
        emit("mam-message", **archived(message))
        count += 1
        if count > 500:
            raise Failure("more than 500 messages: the paging does not end")
    emit("mam-done", messages=count)


async def action_mam_fields(client: Client, args: argparse.Namespace) -> None:
    await client.login(presence=False)
    form = await client.plugin["xep_0313"].get_fields(timeout=args.iq_timeout)
    by_var = form.get_fields()
    fields = [{"var": var, "type": field["type"] or None} for var, field in by_var.items()]
    # slixmpp reads a hidden field's value as a list of values.
    form_type = by_var["FORM_TYPE"]["value"] if "FORM_TYPE" in by_var else None
    if not isinstance(form_type, list):
        form_type = [form_type] if form_type else []
    emit("mam-fields", form_type=form_type, fields=fields)


async def action_mam_prefs(client: Client, args: argparse.Namespace) -> None:
    await client.login(presence=False)
    prefs = client.plugin["xep_0441"]
    if args.default is not None or args.always or args.never:
        await prefs.set_preferences(
            default=args.default or "always",
            always=[slixmpp.JID(jid) for jid in args.always],
            never=[slixmpp.JID(jid) for jid in args.never],
            timeout=args.iq_timeout,
        )
    default, always, never = await prefs.get_preferences(timeout=args.iq_timeout)
    emit(
        "mam-prefs",
        default=default or None,
        always=sorted(str(jid) for jid in always),
        never=sorted(str(jid) for jid in never),
    )


async def action_csi(client: Client, args: argparse.Namespace) -> None:
    await client.login(presence=True)
    csi = client.plugin["xep_0352"]
    emit("csi-offered", offered=bool(csi.enabled))
    if not csi.enabled:
        raise Failure("the server did not offer client state indication")
    peer = await client.companion(args.peer, args.peer_password)
    contact = peer.boundjid.bare
    # What the account gets from PEER, in order: presence and messages.
    inbox: asyncio.Queue[slixmpp.Presence | slixmpp.Message] = asyncio.Queue()

    def from_peer(stanza: slixmpp.Presence | slixmpp.Message) -> None:
        if stanza["from"].bare == contact:
            inbox.put_nowait(stanza)

    client.add_event_handler("presence", from_peer)
    client.add_event_handler("message", from_peer)

    # Roster pushes go to the sessions that asked for the roster.
    for session in (client, peer):
        await session.get_roster(timeout=args.iq_timeout)
    client.send_presence(pto=contact, ptype="subscribe")
    loop = asyncio.get_running_loop()
    deadline = loop.time() + args.iq_timeout
    while (
        client.client_roster[contact]["subscription"] != "both"
        or peer.client_roster[client.boundjid.bare]["subscription"] != "both"
    ):
        if loop.time() > deadline:
            raise Failure(
                "no mutual subscription: "
                f"{client.client_roster[contact]['subscription']!r} and "
                f"{peer.client_roster[client.boundjid.bare]['subscription']!r}"
            )
        await asyncio.sleep(0.05)
    emit("subscribed", contact=contact)

    async def collect(state: str, until: str | None) -> None:
        """Prints what comes from PEER: until a message with the body
        `until` and QUIET more, or (None) until QUIET passes without anything
        (after the first stanza, or args.iq_timeout before it)."""
        first = True
        done = False
        while True:
            timeout = QUIET if done or (until is None and not first) else args.iq_timeout
            try:
                stanza = await asyncio.wait_for(inbox.get(), timeout)
            except asyncio.TimeoutError:
                if done or until is None:
                    return
                raise Failure(f"{state}: no message {until!r} within {timeout} s") from None
            first = False
            if isinstance(stanza, slixmpp.Message):
                kind = "message"
                done = done or stanza["body"] == until
            else:
                kind = "presence"
            emit(
                "got",
                state=state,
                kind=kind,
                type=stanza["type"],
                show=stanza["show"] if kind == "presence" else None,
                status=stanza["status"] if kind == "presence" else None,
                body=stanza["body"] if kind == "message" else None,
            )

    # PEER's presence came with the subscription; wait for all there is.
    await collect("subscribed", None)
    csi.send_inactive()
    await client.barrier()
    emit("inactive")
    for show in ("away", "xa", "dnd"):
        peer.send_presence(pshow=show, pstatus=f"now {show}")
    peer.send_message(mto=client.boundjid.bare, mbody="while inactive", mtype="chat")
    await peer.barrier()
    await collect("inactive", "while inactive")
    csi.send_active()
    emit("active")
    await collect("active", None)


ACTIONS = {
    "login": action_login,
    "send": action_send,
    "receive": action_receive,
    "roster-add": action_roster_add,
    "disco": action_disco,
    "private": action_private,
    "vcard-set": action_vcard_set,
    "vcard-get": action_vcard_get,
    "leave": action_leave,
    "last": action_last,
    "items": action_items,
    "commands": action_commands,
    "converse": action_converse,
    "carbons": action_carbons,
    "exchange": action_exchange,
    "csi": action_csi,
    "mam": action_mam,
    "mam-messages": action_mam_messages,
    "mam-fields": action_mam_fields,
    "mam-prefs": action_mam_prefs,
}


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--jid", required=True, help="the account's bare (or full) JID")
    parser.add_argument("--password", help="required unless --mechanism EXTERNAL")
    parser.add_argument("--host", default="127.0.0.1", help="address to connect to")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--mode", choices=("starttls", "direct-tls"), default="starttls")
    parser.add_argument(
        "--mechanism",
        default="SCRAM-SHA-256",
        help="the only SASL mechanism to use (ANY: slixmpp's own choice)",
    )
    parser.add_argument("--cert", help="PEM client certificate to present (with --key)")
    parser.add_argument("--key", help="PEM private key of --cert")
    trust = parser.add_mutually_exclusive_group()
    trust.add_argument("--ca", help="PEM file of the certificate(s) to trust")
    trust.add_argument("--insecure", action="store_true", help="do not verify the server")
    parser.add_argument(
        "--time-limit", type=float, default=40.0, help="overall limit in seconds"
    )
    parser.add_argument("--iq-timeout", type=float, default=10.0)
    parser.add_argument("--debug", action="store_true", help="slixmpp's debug log on stderr")

    actions = parser.add_subparsers(dest="action", required=True)
    actions.add_parser("login")
    send = actions.add_parser("send")
    send.add_argument("--to", required=True)
    send.add_argument("--body", required=True)
    receive = actions.add_parser("receive")
    receive.add_argument("--count", type=int, default=1)
    receive.add_argument("--timeout", type=float, default=20.0)
    roster = actions.add_parser("roster-add")
    roster.add_argument("--contact", required=True)
    roster.add_argument("--name", default="")
    actions.add_parser("disco")
    private = actions.add_parser("private")
    private.add_argument("--store")
    vcard_set = actions.add_parser("vcard-set")
    vcard_set.add_argument("--fn", required=True)
    vcard_set.add_argument("--photo", required=True, help="the image, base64")
    vcard_get = actions.add_parser("vcard-get")
    vcard_get.add_argument("--of", required=True)
    vcard_get.add_argument("--vcard4", action="store_true")
    leave = actions.add_parser("leave")
    leave.add_argument("--status", required=True)
    last = actions.add_parser("last")
    last.add_argument("--of", required=True)
    actions.add_parser("items")
    commands = actions.add_parser("commands")
    commands.add_argument("--node", help="a command to run once listed")
    commands.add_argument("--script", help="commands to run and submit, as JSON")
    converse = actions.add_parser("converse")
    converse.add_argument("--to", required=True)
    converse.add_argument("--body", required=True)
    converse.add_argument("--timeout", type=float, default=20.0)
    for name in ("carbons", "exchange", "csi"):
        with_peer = actions.add_parser(name)
        with_peer.add_argument("--peer", required=True, help="the other account's JID")
        with_peer.add_argument("--peer-password", required=True)
        if name == "exchange":
            with_peer.add_argument("--count", type=int, default=2)
            with_peer.add_argument("--prefix", default="m")
    mam = actions.add_parser("mam")
    mam.add_argument("--page", type=int, default=10)
    mam.add_argument("--with", dest="with_jid")
    mam.add_argument("--reverse", action="store_true")
    mam_messages = actions.add_parser("mam-messages")
    mam_messages.add_argument("--page", type=int, default=10)
    mam_messages.add_argument("--with", dest="with_jid")
    actions.add_parser("mam-fields")
    mam_prefs = actions.add_parser("mam-prefs")
    mam_prefs.add_argument("--default", choices=("always", "never", "roster"))
    mam_prefs.add_argument("--always", action="append", default=[])
    mam_prefs.add_argument("--never", action="append", default=[])
    args = parser.parse_args(argv)
    if args.password is None and args.mechanism != "EXTERNAL":
        parser.error("--password is required unless --mechanism EXTERNAL")
    if (args.cert is None) != (args.key is None):
        parser.error("--cert and --key go together")
    return args


async def run(args: argparse.Namespace) -> None:
    client = Client(args)
    try:
        await asyncio.wait_for(ACTIONS[args.action](client, args), args.time_limit)
    except asyncio.TimeoutError:
        raise Failure(f"{args.action}: no result within {args.time_limit} s") from None
    except IqError as error:
        iq = error.iq
        raise Failure(
            f"{args.action}: error reply: {iq['error']['type']}/{iq['error']['condition']}"
            f" {iq['error']['text']}".rstrip()
        ) from None
    except IqTimeout:
        raise Failure(f"{args.action}: no reply within {args.iq_timeout} s") from None
    finally:
        for other in client.companions:
            if other.transport is not None:
                try:
                    await asyncio.wait_for(other.logout(), 10.0)
                except (asyncio.TimeoutError, Exception):  # noqa: BLE001 - best effort
                    other.abort()
            else:
                other.cancel_connection_attempt()
        if client.transport is not None:
            try:
                await asyncio.wait_for(client.logout(), 10.0)
            except (asyncio.TimeoutError, Exception):  # noqa: BLE001 - best effort
                client.abort()
        else:
            client.cancel_connection_attempt()


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
        print(f"slixmpp_client: {failure}", file=sys.stderr)
        return failure.status
    except OSError as error:
        print(f"slixmpp_client: {error}", file=sys.stderr)
        return EXIT_FAILURE
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
