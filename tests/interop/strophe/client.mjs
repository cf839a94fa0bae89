// A Strophe.js 5 client for the Sigil interoperability tests
// (crates/sigil/tests/strophe.rs), over WebSocket (RFC 7395) or BOSH
// (XEP-0124/0206), optionally with a TLS client certificate.
//
//   node client.mjs --service wss://localhost:PORT/xmpp-websocket \
//       --jid alice@localhost [--password P] [--cert F --key F] --ca F \
//       [--mechanisms EXTERNAL,SCRAM-SHA-256,custom-plain,...] \
//       [--time-limit 30] [--debug] ACTION [ACTION OPTIONS]
//
// Actions:
//   login                         log in, then log out
//   send --to JID --body TEXT     send a chat message, then log out
//   receive [--count N] [--timeout S]
//                                 go online and wait for N messages
//
// Standard output gets one JSON object a line, for each event:
//   {"event":"connected","jid":FULL JID,"mechanism":NAME,"custom":BOOL,"transport":"websocket"|"bosh"}
//   {"event":"custom-mechanism","mechanism":NAME}  (the custom class ran)
//   {"event":"ready"}                 (receive: online, presence handled)
//   {"event":"message","from":..,"to":..,"type":..,"body":..,"delay":BOOL}
//   {"event":"sent","to":..,"body":..}
//   {"event":"error","condition":..,"detail":..}
//   {"event":"disconnected"}
// Standard error gets the XML exchanged (Strophe's xmlInput/xmlOutput hooks)
// and, with --debug, Strophe's own log.
//
// Exit status: 0 done, 1 unexpected failure, 2 usage, 3 authentication failed,
// 4 connection failed or lost, 5 time limit, 6 receive timeout.
//
// `--mechanisms` is Strophe's `mechanisms` connection option, a whitelist of
// SASL mechanism classes; without it Strophe registers its defaults.
// `custom-plain` is a Strophe.SASLMechanism subclass of this file named PLAIN
// with priority 90 (above every SCRAM class).

import fs from 'node:fs';
import https from 'node:https';
import { format, parseArgs } from 'node:util';

import { $iq, $msg, $pres, Strophe } from 'strophe.js';
import WebSocketImpl from 'ws';
import XMLHttpRequest from 'xhr2';

// Strophe logs info and debug through console.info/console.debug, which go to
// standard output: keep standard output for the JSON lines alone.
for (const name of ['log', 'info', 'debug', 'warn', 'error']) {
    console[name] = (...args) => process.stderr.write(`${format(...args)}\n`);
}

function emit(object) {
    process.stdout.write(`${JSON.stringify(object)}\n`);
}

function usage(message) {
    process.stderr.write(`client.mjs: ${message}\n`);
    process.exit(2);
}

let parsed;
try {
    parsed = parseArgs({
        allowPositionals: true,
        options: {
            service: { type: 'string' },
            jid: { type: 'string' },
            password: { type: 'string' },
            authcid: { type: 'string' },
            cert: { type: 'string' },
            key: { type: 'string' },
            ca: { type: 'string' },
            mechanisms: { type: 'string' },
            'time-limit': { type: 'string', default: '30' },
            debug: { type: 'boolean', default: false },
            to: { type: 'string' },
            body: { type: 'string' },
            count: { type: 'string', default: '1' },
            timeout: { type: 'string', default: '20' },
        },
    });
} catch (e) {
    usage(e.message);
}
const args = parsed.values;
const action = parsed.positionals[0];
if (parsed.positionals.length !== 1 || !['login', 'send', 'receive'].includes(action)) {
    usage('one action: login, send or receive');
}
if (!args.service || !args.jid) {
    usage('--service and --jid are required');
}
if (action === 'send' && (!args.to || args.body === undefined)) {
    usage('send needs --to and --body');
}
if (Boolean(args.cert) !== Boolean(args.key)) {
    usage('--cert and --key go together');
}

Strophe.setLogLevel(args.debug ? Strophe.LogLevel.DEBUG : Strophe.LogLevel.WARN);

// --- TLS: the server's self-signed certificate as the CA, and the client
// certificate, for both transports.
const tls = {};
if (args.ca) {
    tls.ca = fs.readFileSync(args.ca);
}
if (args.cert) {
    tls.cert = fs.readFileSync(args.cert);
    tls.key = fs.readFileSync(args.key);
}

// WebSocket: Strophe's Node build set `globalThis.WebSocket = ws` when it was
// imported, and calls `new WebSocket(service, 'xmpp')`; this subclass adds
// the TLS options.
class TlsWebSocket extends WebSocketImpl {
    constructor(address, protocols, options = {}) {
        super(address, protocols, { ...tls, ...options });
    }
}
globalThis.WebSocket = TlsWebSocket;

// BOSH: xhr2 as XMLHttpRequest, its requests made through an agent that
// carries the TLS options (the same client certificate on every request).
const agent = new https.Agent({ keepAlive: true, ...tls });
XMLHttpRequest.nodejsSet({ httpsAgent: agent });
// xhr2 has no responseXML, which Strophe reads for every BOSH reply.
Object.defineProperty(XMLHttpRequest.prototype, 'responseXML', {
    configurable: true,
    get() {
        if (!this.responseText) {
            return null;
        }
        if (this._sigilParsedText !== this.responseText) {
            this._sigilParsedText = this.responseText;
            this._sigilParsed = new globalThis.DOMParser().parseFromString(this.responseText, 'text/xml');
        }
        return this._sigilParsed;
    },
});
globalThis.XMLHttpRequest = XMLHttpRequest;

// --- SASL mechanisms.

// PLAIN (RFC 4616), implemented here rather than by Strophe.SASLPlain, with a
// priority above SCRAM's so that Strophe picks it whenever the server offers
// PLAIN.
class CustomPlain extends Strophe.SASLMechanism {
    constructor() {
        super('PLAIN', true, 90);
    }

    test(connection) {
        return typeof connection.pass === 'string';
    }

    clientChallenge(connection) {
        emit({ event: 'custom-mechanism', mechanism: this.mechname });
        const message = `\u0000${connection.authcid}\u0000${connection.pass}`;
        // Strophe base64-encodes the result with btoa: hand it UTF-8 bytes.
        return Buffer.from(message, 'utf8').toString('latin1');
    }

    onChallenge() {
        return '';
    }
}

const MECHANISMS = {
    'EXTERNAL': Strophe.SASLExternal,
    'PLAIN': Strophe.SASLPlain,
    'SCRAM-SHA-1': Strophe.SASLSHA1,
    'SCRAM-SHA-256': Strophe.SASLSHA256,
    'SCRAM-SHA-384': Strophe.SASLSHA384,
    'SCRAM-SHA-512': Strophe.SASLSHA512,
    'ANONYMOUS': Strophe.SASLAnonymous,
    'custom-plain': CustomPlain,
};

const options = {};
if (args.mechanisms) {
    options.mechanisms = args.mechanisms.split(',').map((name) => {
        const mechanism = MECHANISMS[name];
        if (!mechanism) {
            usage(`unknown mechanism ${name}; known: ${Object.keys(MECHANISMS).join(', ')}`);
        }
        return mechanism;
    });
}

// --- The connection.

const connection = new Strophe.Connection(args.service, options);
const transport = args.service.startsWith('ws') ? 'websocket' : 'bosh';

function serialize(data) {
    if (typeof data === 'string') {
        return data;
    }
    if (data && typeof data.data === 'string') {
        return data.data;
    }
    return data ? Strophe.serialize(data) : String(data);
}
connection.xmlInput = (data) => process.stderr.write(`RECV ${serialize(data)}\n`);
connection.xmlOutput = (data) => process.stderr.write(`SENT ${serialize(data)}\n`);

let finished = false;
function finish(code) {
    if (finished) {
        return;
    }
    finished = true;
    agent.destroy();
    process.exit(code);
}

let exitCode = null;
/** Logs out, then exits with `code` (bounded: at most 5 s later). */
function logOut(code) {
    if (exitCode !== null) {
        return;
    }
    exitCode = code;
    setTimeout(() => finish(code), 5000);
    connection.disconnect('done');
}

const limit = Number(args['time-limit']) * 1000;
setTimeout(() => {
    emit({ event: 'error', condition: 'time-limit', detail: `no result within ${args['time-limit']} s` });
    finish(5);
}, limit);

process.on('uncaughtException', (e) => {
    emit({ event: 'error', condition: 'exception', detail: String(e && e.stack ? e.stack : e) });
    finish(1);
});
process.on('unhandledRejection', (e) => {
    emit({ event: 'error', condition: 'exception', detail: String(e && e.stack ? e.stack : e) });
    finish(1);
});

/** An IQ round trip (a XEP-0199 ping of the server), then `next`. */
function roundTrip(next) {
    const ping = $iq({ type: 'get', to: Strophe.getDomainFromJid(args.jid) }).c('ping', { xmlns: 'urn:xmpp:ping' });
    connection.sendIQ(ping, () => next(), () => next(), 10000);
}

let received = 0;

function onMessage(stanza) {
    const body = stanza.getElementsByTagName('body')[0];
    if (!body) {
        return true;
    }
    const delay = Array.from(stanza.getElementsByTagName('delay')).some(
        (d) => d.getAttribute('xmlns') === 'urn:xmpp:delay',
    );
    emit({
        event: 'message',
        from: stanza.getAttribute('from'),
        to: stanza.getAttribute('to'),
        type: stanza.getAttribute('type'),
        // The text itself, not Strophe.getText's XML-escaped form.
        body: Array.from(body.childNodes)
            .map((n) => n.nodeValue || '')
            .join(''),
        delay,
    });
    received += 1;
    if (received >= Number(args.count)) {
        logOut(0);
    }
    return true;
}

function onConnected() {
    const mechanism = connection._sasl_mechanism;
    emit({
        event: 'connected',
        jid: connection.jid,
        mechanism: mechanism ? mechanism.mechname : null,
        custom: mechanism instanceof CustomPlain,
        transport,
    });
    switch (action) {
        case 'login':
            roundTrip(() => logOut(0));
            break;
        case 'send': {
            connection.send($msg({ to: args.to, type: 'chat' }).c('body').t(args.body).tree());
            // The server handled the message once it answers the ping after it.
            roundTrip(() => {
                emit({ event: 'sent', to: args.to, body: args.body });
                logOut(0);
            });
            break;
        }
        case 'receive': {
            connection.addHandler(onMessage, null, 'message', null, null, null);
            connection.send($pres().tree());
            roundTrip(() => {
                emit({ event: 'ready' });
                setTimeout(() => {
                    emit({
                        event: 'error',
                        condition: 'receive-timeout',
                        detail: `${received} of ${args.count} message(s) within ${args.timeout} s`,
                    });
                    logOut(6);
                }, Number(args.timeout) * 1000);
            });
            break;
        }
    }
}

const STATUS = Object.fromEntries(Object.entries(Strophe.Status).map(([name, value]) => [value, name]));

connection.connect(args.jid, args.password ?? null, (status, condition) => {
    if (args.debug) {
        process.stderr.write(`status ${STATUS[status]} ${condition ?? ''}\n`);
    }
    switch (status) {
        case Strophe.Status.CONNECTED:
            onConnected();
            break;
        case Strophe.Status.AUTHFAIL:
            emit({ event: 'error', condition: 'authentication-failed', detail: condition });
            logOut(3);
            break;
        case Strophe.Status.CONNFAIL:
        case Strophe.Status.ERROR:
        case Strophe.Status.CONNTIMEOUT:
            emit({ event: 'error', condition: STATUS[status].toLowerCase(), detail: condition });
            if (exitCode === null) {
                exitCode = 4;
            }
            break;
        case Strophe.Status.DISCONNECTED:
            emit({ event: 'disconnected' });
            finish(exitCode ?? 4);
            break;
        default:
            break;
    }
}, undefined, undefined, undefined, args.authcid);
