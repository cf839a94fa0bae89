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
// browser is closed on every path.

import { chromium } from 'playwright-core';
import { createInterface } from 'node:readline';

const FLAGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];
const TEXT_LIMIT = 2000;

function emit(event, fields = {}) {
  process.stdout.write(JSON.stringify({ event, ...fields }) + '\n');
}

function parseArgs(argv) {
  const args = {
    timeLimit: 120,
    stepTimeout: 40,
    chromium: '/usr/bin/chromium',
  };
  const names = {
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
  };
  for (let i = 0; i < argv.length; i += 2) {
    const name = names[argv[i]];
    if (name === undefined || i + 1 >= argv.length) {
      throw new Error(`bad argument ${JSON.stringify(argv[i])}`);
    }
    args[name] = argv[i + 1];
  }
  for (const name of ['url', 'home', 'userDataDir', 'screenshot', 'jid', 'peer', 'expect', 'reply']) {
    if (args[name] === undefined) {
      throw new Error(`missing --${name.replace(/[A-Z]/g, (c) => '-' + c.toLowerCase())}`);
    }
  }
  args.timeLimit = Number(args.timeLimit);
  args.stepTimeout = Number(args.stepTimeout);
  return args;
}

function truncate(text) {
  const s = String(text);
  return s.length > TEXT_LIMIT ? s.slice(0, TEXT_LIMIT) + '…' : s;
}

/// Resolves on a line "quit" or the end of standard input.
function quitRequested() {
  return new Promise((resolve) => {
    const lines = createInterface({ input: process.stdin });
    lines.on('line', (line) => {
      if (line.trim() === 'quit') {
        lines.close();
      }
    });
    lines.on('close', resolve);
  });
}

function watch(page, origin) {
  page.on('console', (message) => emit('console', { type: message.type(), text: truncate(message.text()) }));
  page.on('pageerror', (error) =>
    emit('pageerror', { message: truncate(error.message), stack: truncate(error.stack ?? '') }),
  );
  page.on('requestfailed', (request) =>
    emit('request-failed', { url: request.url(), error: request.failure()?.errorText ?? null }),
  );
  page.on('response', (response) => {
    if (response.status() >= 400) {
      emit('http-error', { url: response.url(), status: response.status() });
    }
  });
  page.on('websocket', (socket) => {
    emit('websocket', { url: socket.url() });
    socket.on('framesent', (frame) => emit('frame', { dir: 'out', data: truncate(frame.payload) }));
    socket.on('framereceived', (frame) => emit('frame', { dir: 'in', data: truncate(frame.payload) }));
    socket.on('socketerror', (error) => emit('websocket-error', { message: String(error) }));
    socket.on('close', () => emit('websocket-closed', { url: socket.url() }));
  });
  page.on('request', (request) => {
    const requested = new URL(request.url());
    // The chat must ask nothing of any other host (no fonts, logos or
    // scripts from outside).
    if (!['data:', 'blob:'].includes(requested.protocol) && requested.host !== origin.host) {
      emit('foreign-request', { url: request.url() });
    }
    if (requested.pathname === '/http-bind' && request.method() === 'POST') {
      emit('bosh', { dir: 'out', data: truncate(request.postData() ?? '') });
    }
  });
  page.on('requestfinished', async (request) => {
    if (new URL(request.url()).pathname === '/http-bind' && request.method() === 'POST') {
      try {
        const response = await request.response();
        emit('bosh', { dir: 'in', status: response?.status() ?? null, data: truncate((await response?.text()) ?? '') });
      } catch {
        // The page or browser went away first.
      }
    }
  });
}

async function chat(page, args, step) {
  const timeout = args.stepTimeout * 1000;

  step.name = 'load';
  const response = await page.goto(args.url, { timeout, waitUntil: 'load' });
  emit('loaded', { url: page.url(), status: response?.status() ?? null });

  // Logged in: the control box shows the account's JID and the online status.
  step.name = 'login';
  const profile = page.locator('converse-user-profile');
  await profile.locator('.username', { hasText: args.jid }).first().waitFor({ timeout });
  await profile.locator('.xmpp-status [data-value="online"]').first().waitFor({ timeout });
  const shown = (await profile.locator('.username').first().innerText()).trim();
  emit('logged-in', { jid: shown, status: 'online' });

  step.name = 'password-fields';
  emit('password-fields', { count: await page.locator('input[type=password]').count() });

  // Open the chat with the peer from the contacts list. The peer is a
  // roster contact: Converse 14.0.0 does not show a chat with a JID outside
  // the roster here (an incoming message from one opens no visible chat box,
  // even with the server's XEP-0191 blocking; it also waits for PEP
  // bookmarks, which the server does not offer yet).
  step.name = 'open-chat';
  const contact = page.locator(`converse-roster a.open-chat[data-jid="${args.peer}"]`).first();
  await contact.waitFor({ timeout });
  await contact.click({ timeout });
  const chatbox = page.locator(`converse-chat[jid="${args.peer}"]`);
  const textarea = chatbox.locator('textarea.chat-textarea');
  await textarea.waitFor({ timeout });
  emit('chat-opened', { with: args.peer });

  // The peer writes first.
  step.name = 'receive';
  const incoming = chatbox.locator('converse-chat-message .chat-msg__text', { hasText: args.expect });
  await incoming.first().waitFor({ timeout });
  emit('received', { from: args.peer, body: (await incoming.first().innerText()).trim() });

  step.name = 'reply';
  await textarea.click({ timeout });
  await textarea.fill(args.reply);
  await textarea.press('Enter');
  await chatbox
    .locator('converse-chat-message .chat-msg__text', { hasText: args.reply })
    .first()
    .waitFor({ timeout });
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

async function main() {
  let args;
  try {
    args = parseArgs(process.argv.slice(2));
  } catch (error) {
    emit('error', { step: 'arguments', message: error.message });
    process.exit(2);
  }

  let context = null;
  let finished = false;
  const limit = setTimeout(async () => {
    if (finished) return;
    emit('error', { step: 'time-limit', message: `no result within ${args.timeLimit} s` });
    try {
      await Promise.race([context?.close(), new Promise((r) => setTimeout(r, 5000))]);
    } finally {
      process.exit(2);
    }
  }, args.timeLimit * 1000);

  const step = { name: 'launch' };
  let status = 0;
  try {
    context = await chromium.launchPersistentContext(args.userDataDir, {
      executablePath: args.chromium,
      headless: true,
      args: FLAGS,
      env: { ...process.env, HOME: args.home },
      viewport: { width: 1280, height: 800 },
      timeout: args.stepTimeout * 1000,
    });
    emit('launched', { version: context.browser()?.version() ?? null });
    const page = context.pages()[0] ?? (await context.newPage());
    watch(page, new URL(args.url));
    try {
      await chat(page, args, step);
      emit('done');
    } catch (error) {
      status = 1;
      emit('error', { step: step.name, message: truncate(error.message) });
      const failure = args.screenshot.replace(/\.png$/, '') + '-failure.png';
      try {
        await page.screenshot({ path: failure, timeout: 5000 });
        emit('screenshot', { path: failure, failure: true });
      } catch {
        // No screenshot: the page is gone.
      }
      try {
        emit('page-text', { text: truncate(await page.locator('body').innerText({ timeout: 5000 })) });
      } catch {
        // Nothing to show.
      }
    }
  } catch (error) {
    status = 1;
    emit('error', { step: step.name, message: truncate(error.message) });
  } finally {
    finished = true;
    if (context !== null) {
      await Promise.race([context.close().catch(() => {}), new Promise((r) => setTimeout(r, 10000))]);
    }
    clearTimeout(limit);
  }
  process.exit(status);
}

await main();
