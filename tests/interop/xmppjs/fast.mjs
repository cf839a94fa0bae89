// Logs in to a Sigil server with xmpp.js (@xmpp/client 0.14), a client
// nobody here wrote that speaks SASL2 (XEP-0388), Bind 2 (XEP-0386) and
// FAST (XEP-0484, HT-SHA-256-NONE): once with a password, asking for a
// token, then again with the token and a wrong password (so only the
// token can log it in), then with a token the server does not know (it
// must fall back to the password). One JSON line per event on stdout.
//
//   NODE_EXTRA_CA_CERTS=server.crt node fast.mjs SERVICE DOMAIN USER PASSWORD AGENT-ID
import { client, xml } from "@xmpp/client";

const [service, domain, username, password, agent] = process.argv.slice(2);
const say = (event) => process.stdout.write(JSON.stringify(event) + "\n");
let token = null;

async function login(name, secret, wrongToken) {
  const xmpp = client({
    service,
    domain,
    username,
    password: secret,
    userAgent: xml(
      "user-agent",
      { id: agent },
      xml("software", {}, "xmpp.js"),
      xml("device", {}, "interop test"),
    ),
  });
  xmpp.fast.saveToken = async (saved) => {
    token = saved;
    say({ event: "token", run: name, mechanism: saved.mechanism, expiry: saved.expiry });
  };
  xmpp.fast.fetchToken = async () => (wrongToken ? { ...token, token: "x".repeat(96) } : token);
  xmpp.fast.deleteToken = async () => {
    say({ event: "token-deleted", run: name });
  };
  const mechanisms = [];
  xmpp.on("send", (element) => {
    if (element.is("authenticate", "urn:xmpp:sasl:2")) mechanisms.push(element.attrs.mechanism);
  });
  const failed = new Promise((resolve) => xmpp.on("error", (error) => resolve(error)));
  const online = new Promise((resolve) => xmpp.on("online", (address) => resolve(address)));
  xmpp.start().catch(() => {});
  const outcome = await Promise.race([
    online.then((address) => ({ address })),
    failed.then((error) => ({ error })),
    new Promise((resolve) => setTimeout(() => resolve({ error: new Error("timed out") }), 15000)),
  ]);
  if (outcome.error) {
    say({ event: "error", run: name, mechanisms, message: String(outcome.error.condition ?? outcome.error.message) });
  } else {
    say({ event: "online", run: name, jid: outcome.address.toString(), mechanisms });
  }
  await xmpp.stop().catch(() => {});
}

await login("password", password, false);
await login("token", "not the password", false);
await login("unknown token", password, true);
process.exit(0);
