// What the browser scripts (chat.mjs, devices.mjs, commands.mjs) share: launching
// Debian's Chromium with a profile and a HOME of its own (whose NSS
// database holds the client certificate it presents), reporting events as
// JSON lines, recording the page's console and XMPP traffic, logging in to
// Converse.js and opening a chat from the contacts list.

import { chromium } from 'playwright-core';
import { createInterface } from 'node:readline';

export const FLAGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];
export const TEXT_LIMIT = 2000;

/// A function writing events as JSON lines on standard output, each with
/// `fields` (say, the device it is about) after its name.
export function emitter(fields = {}) {
  return (event, more = {}) => process.stdout.write(JSON.stringify({ event, ...fields, ...more }) + '\n');
}

export function truncate(text, limit = TEXT_LIMIT) {
  const s = String(text);
  return s.length > limit ? s.slice(0, limit) + '…' : s;
}

/// Parses `--name value` pairs by `names` (flag to key) over `defaults`,
/// insisting on `required` keys.
export function parseArgs(argv, names, defaults, required) {
  const args = { ...defaults };
  for (let i = 0; i < argv.length; i += 2) {
    const name = names[argv[i]];
    if (name === undefined || i + 1 >= argv.length) {
      throw new Error(`bad argument ${JSON.stringify(argv[i])}`);
    }
    args[name] = argv[i + 1];
  }
  for (const name of required) {
    if (args[name] === undefined) {
      throw new Error(`missing --${name.replace(/[A-Z]/g, (c) => '-' + c.toLowerCase())}`);
    }
  }
  return args;
}

/// Resolves on a line "quit" or the end of standard input.
export function quitRequested() {
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

/// Chromium with its own profile, and HOME (so its own NSS database, so its
/// own client certificate).
export async function launch({ chromiumPath, userDataDir, home, stepTimeout, flags = [] }) {
  return chromium.launchPersistentContext(userDataDir, {
    executablePath: chromiumPath,
    headless: true,
    args: [...FLAGS, ...flags],
    env: { ...process.env, HOME: home },
    viewport: { width: 1280, height: 800 },
    timeout: stepTimeout * 1000,
  });
}

/// Reports, through `emit`, what the page does: its console and errors,
/// failed requests, requests to other hosts, WebSocket frames and BOSH
/// bodies (truncated to `limit`).
export function watch(page, origin, emit, limit = TEXT_LIMIT) {
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
    socket.on('framesent', (frame) => emit('frame', { dir: 'out', data: truncate(frame.payload, limit) }));
    socket.on('framereceived', (frame) => emit('frame', { dir: 'in', data: truncate(frame.payload, limit) }));
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
      emit('bosh', { dir: 'out', data: truncate(request.postData() ?? '', limit) });
    }
  });
  page.on('requestfinished', async (request) => {
    if (new URL(request.url()).pathname === '/http-bind' && request.method() === 'POST') {
      try {
        const response = await request.response();
        emit('bosh', {
          dir: 'in',
          status: response?.status() ?? null,
          data: truncate((await response?.text()) ?? '', limit),
        });
      } catch {
        // The page or browser went away first.
      }
    }
  });
}

/// Loads `url` and waits until Converse shows `jid` logged in and online;
/// reports "loaded", "logged-in" and "password-fields".
export async function login(page, url, jid, timeout, emit) {
  const response = await page.goto(url, { timeout, waitUntil: 'load' });
  emit('loaded', { url: page.url(), status: response?.status() ?? null });

  // Logged in: the control box shows the account's JID and the online status.
  const profile = page.locator('converse-user-profile');
  await profile.locator('.username', { hasText: jid }).first().waitFor({ timeout });
  await profile.locator('.xmpp-status [data-value="online"]').first().waitFor({ timeout });
  const shown = (await profile.locator('.username').first().innerText()).trim();
  emit('logged-in', { jid: shown, status: 'online' });
  emit('password-fields', { count: await page.locator('input[type=password]').count() });
}

/// Opens the chat with `peer` from the contacts list; returns the chat box
/// and its text area.
///
/// The peer is a roster contact: Converse 14.0.0 does not show a chat with
/// a JID outside the roster here (an incoming message from one opens no
/// visible chat box, even with the server's XEP-0191 blocking; it also
/// waits for PEP bookmarks, which the server does not offer yet).
export async function openChat(page, peer, timeout) {
  const contact = page.locator(`converse-roster a.open-chat[data-jid="${peer}"]`).first();
  await contact.waitFor({ timeout });
  await contact.click({ timeout });
  const chatbox = page.locator(`converse-chat[jid="${peer}"]`);
  const textarea = chatbox.locator('textarea.chat-textarea');
  await textarea.waitFor({ timeout });
  return { chatbox, textarea };
}

/// The message with `text` in a chat box, once shown.
export async function shownMessage(chatbox, text, timeout) {
  const message = chatbox.locator('converse-chat-message .chat-msg__text', { hasText: text }).first();
  await message.waitFor({ timeout });
  return (await message.innerText()).trim();
}

/// Types `text` into the chat's text area, sends it, and waits for it to
/// be shown.
export async function send(chatbox, textarea, text, timeout) {
  await textarea.click({ timeout });
  await textarea.fill(text);
  await textarea.press('Enter');
  return shownMessage(chatbox, text, timeout);
}

/// After a failure: a screenshot at `path` and the page's text, if the
/// page is still there.
export async function reportFailure(page, path, emit) {
  try {
    await page.screenshot({ path, timeout: 5000 });
    emit('screenshot', { path, failure: true });
  } catch {
    // No screenshot: the page is gone.
  }
  try {
    emit('page-text', { text: truncate(await page.locator('body').innerText({ timeout: 5000 })) });
  } catch {
    // Nothing to show.
  }
}

/// Runs a script with one browser: reads its arguments with `parse`
/// (exit status 2 when they are wrong), launches Chromium with
/// `args.chromium`, `args.userDataDir` and `args.home`, watches the page
/// against `args.url`, runs `body(page, args, step)` (which keeps
/// `step.name` up to date), then reports "done", or the error with a
/// screenshot at `failureShot(args)` and the page's text (exit status 1).
/// The whole run is bounded by `args.timeLimit` seconds (exit status 2);
/// the browser is closed on every path.
export async function runOneBrowser(emit, parse, body, failureShot) {
  let args;
  try {
    args = parse(process.argv.slice(2));
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
    context = await launch({
      chromiumPath: args.chromium,
      userDataDir: args.userDataDir,
      home: args.home,
      stepTimeout: args.stepTimeout,
    });
    emit('launched', { version: context.browser()?.version() ?? null });
    const page = context.pages()[0] ?? (await context.newPage());
    watch(page, new URL(args.url), emit);
    try {
      await body(page, args, step);
      emit('done');
    } catch (error) {
      status = 1;
      emit('error', { step: step.name, message: truncate(error.message) });
      await reportFailure(page, failureShot(args), emit);
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
