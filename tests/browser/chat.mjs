// Drives Debian's Chromium through Sigil's web chat (Converse.js) for
// crates/sigil/tests/browser.rs: the browser itself presents the TLS client
// certificate found in the NSS database under --home (selected without a
// dialog by a managed AutoSelectCertificateForUrls policy the caller wrote),
// Converse logs in with SASL EXTERNAL, waits for a message from --peer,
// replies, and saves a screenshot of the logged-in chat.
//
//   node chat.mjs --url https://localhost:PORT/ --home DIR --user-data-dir DIR \
//     --screenshot FILE.png --jid alice@localhost --peer bob@localhost \
//     --expect 'text from the peer' --reply 'text to send back' \
//     [--time-limit 120] [--step-timeout 40] [--chromium /usr/bin/chromium]
//
// Every result is one JSON object on a line of standard output:
//   {"event":"launched","version":...}
//   {"event":"loaded","url":...,"status":200}
//   {"event":"logged-in","jid":...,"status":"online"}
//   {"event":"password-fields","count":0}
//   {"event":"chat-opened","with":...}  (the peer may send now)
//   {"event":"received","from":...,"body":...}
//   {"event":"sent","to":...,"body":...}
//   {"event":"screenshot","path":...}
//   {"event":"waiting"}        (reply sent; the page stays open until a line
//                               "quit" or end of input on standard input)
//   {"event":"done"}
// and along the way, as evidence: "console" (the page's console), "pageerror",
// "http-error", "request-failed", "websocket", "frame" (WebSocket frames, in
// and out) and "bosh" (BOSH request and response bodies).
// On failure: {"event":"error","step":...,"message":...}, a screenshot at
// FILE-failure.png when possible, "page-text" (what the page shows), and exit
// status 1. The whole run is bounded by --time-limit (exit status 2); the
// browser is closed on every path. What it shares with devices.mjs is in
// lib.mjs.

import {
  emitter,
  login,
  openChat,
  parseArgs,
  quitRequested,
  runOneBrowser,
  send,
  shownMessage,
} from './lib.mjs';

const emit = emitter();

function chatArgs(argv) {
  const args = parseArgs(
    argv,
    {
      '--url': 'url',
      '--home': 'home',
      '--user-data-dir': 'userDataDir',
      '--screenshot': 'screenshot',
      '--jid': 'jid',
      '--peer': 'peer',
      '--expect': 'expect',
      '--reply': 'reply',
      '--time-limit': 'timeLimit',
      '--step-timeout': 'stepTimeout',
      '--chromium': 'chromium',
    },
    { timeLimit: 120, stepTimeout: 40, chromium: '/usr/bin/chromium' },
    ['url', 'home', 'userDataDir', 'screenshot', 'jid', 'peer', 'expect', 'reply'],
  );
  args.timeLimit = Number(args.timeLimit);
  args.stepTimeout = Number(args.stepTimeout);
  return args;
}

async function chat(page, args, step) {
  const timeout = args.stepTimeout * 1000;

  step.name = 'login';
  await login(page, args.url, args.jid, timeout, emit);

  step.name = 'open-chat';
  const { chatbox, textarea } = await openChat(page, args.peer, timeout);
  emit('chat-opened', { with: args.peer });

  // The peer writes first.
  step.name = 'receive';
  emit('received', { from: args.peer, body: await shownMessage(chatbox, args.expect, timeout) });

  step.name = 'reply';
  await send(chatbox, textarea, args.reply, timeout);
  emit('sent', { to: args.peer, body: args.reply });

  step.name = 'password-fields';
  emit('password-fields', { count: await page.locator('input[type=password]').count() });

  step.name = 'screenshot';
  await page.screenshot({ path: args.screenshot, timeout });
  emit('screenshot', { path: args.screenshot });

  // Stay online until the caller has seen the reply arrive.
  step.name = 'wait';
  emit('waiting');
  await quitRequested();
}

await runOneBrowser(emit, chatArgs, chat, (args) => args.screenshot.replace(/\.png$/, '') + '-failure.png');
