// One account on three devices, each a Chromium of its own (its own
// profile, and its own HOME whose NSS database holds that device's client
// certificate, selected without a dialog by the managed
// AutoSelectCertificateForUrls policy the caller wrote), each logged in to
// Sigil's web chat (Converse.js) with SASL EXTERNAL, for
// crates/sigil/tests/browser.rs:
//
//  1. The first and second devices log in and open the chat with --peer;
//     the first sends --message, and the second shows it (a carbon,
//     XEP-0280). The peer answers --reply; both show it.
//  2. The second device leaves the page, its storage for the site is
//     emptied (IndexedDB, localStorage, sessionStorage: what Converse
//     caches), and it loads the chat again: it shows both messages, which
//     only the server's archive (XEP-0313) still has.
//  3. The third device, never logged in before, logs in and opens the chat
//     with the peer: it shows both messages, from the archive.
//
//   node devices.mjs --url https://localhost:PORT/ --jid alice@localhost \
//     --peer bob@localhost --devices laptop,phone,tablet --home-base DIR \
//     --screenshot-prefix PATH --message 'to the peer' --reply 'from the peer' \
//     [--time-limit 170] [--step-timeout 40] [--chromium /usr/bin/chromium]
//
// Device NAME uses DIR/NAME/home as its HOME and DIR/NAME/profile as its
// Chromium profile; its screenshots are PATH-NAME.png (and, for the
// second device after the reload, PATH-NAME-reloaded.png).
//
// Every result is one JSON object on a line of standard output, with the
// device it is about in "device":
//   {"event":"launched","device":...,"version":...}
//   {"event":"loaded",...}, {"event":"logged-in","jid":...}, {"event":"password-fields","count":0}
//   {"event":"chat-opened","with":...}
//   {"event":"sent","to":...,"body":...}         (first device; the peer may answer now)
//   {"event":"shown","body":...}                 (second device: the first's message)
//   {"event":"received","from":...,"body":...}   (first and second devices: the answer)
//   {"event":"reloading"}, {"event":"storage-cleared","before":{...},"after":{...}}
//   {"event":"history","bodies":[...]}           (second device reloaded, third device)
//   {"event":"screenshot","path":...}
//   {"event":"closed"}
//   {"event":"done"}                             (no device)
// and, as evidence, per device: "console", "pageerror", "http-error",
// "request-failed", "foreign-request", "websocket" and "frame" (the
// WebSocket frames, in and out). On failure: {"event":"error","device":...,
// "step":...,"message":...}, screenshots at PATH-NAME-failure.png,
// "page-text", and exit status 1. The whole run is bounded by --time-limit
// (exit status 2); every browser is closed on every path.

import {
  emitter,
  launch,
  login,
  openChat,
  parseArgs,
  reportFailure,
  send,
  shownMessage,
  truncate,
  watch,
} from './lib.mjs';

/// Frames are recorded up to this length: archive results carry a whole
/// message each.
const FRAME_LIMIT = 8000;
/// Chromium keeps no page in its back/forward cache (a page kept there
/// would keep Converse's IndexedDB connections open while they are being
/// deleted).
const DEVICE_FLAGS = ['--disable-features=BackForwardCache'];

const emit = emitter();

function devicesArgs(argv) {
  const args = parseArgs(
    argv,
    {
      '--url': 'url',
      '--jid': 'jid',
      '--peer': 'peer',
      '--devices': 'devices',
      '--home-base': 'homeBase',
      '--screenshot-prefix': 'screenshotPrefix',
      '--message': 'message',
      '--reply': 'reply',
      '--time-limit': 'timeLimit',
      '--step-timeout': 'stepTimeout',
      '--chromium': 'chromium',
    },
    { timeLimit: 170, stepTimeout: 40, chromium: '/usr/bin/chromium' },
    ['url', 'jid', 'peer', 'devices', 'homeBase', 'screenshotPrefix', 'message', 'reply'],
  );
  args.devices = args.devices.split(',');
  if (args.devices.length !== 3 || new Set(args.devices).size !== 3) {
    throw new Error('--devices needs three different names');
  }
  args.timeLimit = Number(args.timeLimit);
  args.stepTimeout = Number(args.stepTimeout);
  return args;
}

/// A failure, with the device and step it happened at.
class StepError extends Error {
  constructor(device, step, cause) {
    super(cause?.message ?? String(cause));
    this.device = device;
    this.step = step;
  }
}

/// One device: a Chromium with its own profile and certificate.
class Device {
  constructor(name, args) {
    this.name = name;
    this.args = args;
    this.emit = emitter({ device: name });
    this.context = null;
    this.page = null;
    this.chat = null;
  }

  /// Runs `action` as step `step` of this device.
  async step(step, action) {
    try {
      return await action();
    } catch (error) {
      throw error instanceof StepError ? error : new StepError(this.name, step, error);
    }
  }

  async start() {
    const { args } = this;
    await this.step('launch', async () => {
      this.context = await launch({
        chromiumPath: args.chromium,
        userDataDir: `${args.homeBase}/${this.name}/profile`,
        home: `${args.homeBase}/${this.name}/home`,
        stepTimeout: args.stepTimeout,
        flags: DEVICE_FLAGS,
      });
      this.emit('launched', { version: this.context.browser()?.version() ?? null });
      this.page = this.context.pages()[0] ?? (await this.context.newPage());
      watch(this.page, new URL(args.url), this.emit, FRAME_LIMIT);
    });
    await this.openChat();
  }

  /// Logs in (loading the page) and opens the chat with the peer.
  async openChat() {
    const { args } = this;
    const timeout = args.stepTimeout * 1000;
    await this.step('login', () => login(this.page, args.url, args.jid, timeout, this.emit));
    this.chat = await this.step('open-chat', () => openChat(this.page, args.peer, timeout));
    this.emit('chat-opened', { with: args.peer });
  }

  /// Waits until the chat shows `text`; returns the text shown.
  async shows(step, text) {
    return this.step(step, () => shownMessage(this.chat.chatbox, text, this.args.stepTimeout * 1000));
  }

  async screenshot(suffix = '') {
    const path = `${this.args.screenshotPrefix}-${this.name}${suffix}.png`;
    await this.step('screenshot', () => this.page.screenshot({ path, timeout: this.args.stepTimeout * 1000 }));
    this.emit('screenshot', { path });
  }

  /// Leaves the chat for another page of the site, empties the site's
  /// storage (what Converse keeps of the account, its chats and their
  /// messages), and logs in again.
  async reloadWithoutCache() {
    const { args } = this;
    const timeout = args.stepTimeout * 1000;
    this.emit('reloading');
    await this.step('clear-storage', async () => {
      await this.page.goto(new URL('/dist/manifest.json', args.url).href, { timeout, waitUntil: 'load' });
      const before = await storageOf(this.page);
      await this.page.evaluate(async (limit) => {
        localStorage.clear();
        sessionStorage.clear();
        for (const { name } of await indexedDB.databases()) {
          await new Promise((resolve, reject) => {
            const request = indexedDB.deleteDatabase(name);
            request.onsuccess = resolve;
            request.onerror = () => reject(request.error);
            setTimeout(() => reject(new Error(`IndexedDB ${name} not deleted in time`)), limit);
          });
        }
      }, timeout);
      const after = await storageOf(this.page);
      this.emit('storage-cleared', { before, after });
    });
    await this.openChat();
  }

  /// Waits until the chat shows every one of `texts`; reports "history".
  async history(texts) {
    const bodies = [];
    for (const text of texts) {
      bodies.push(await this.shows('history', text));
    }
    this.emit('history', { bodies });
  }

  async close() {
    if (this.context !== null) {
      const context = this.context;
      this.context = null;
      await Promise.race([context.close().catch(() => {}), new Promise((r) => setTimeout(r, 10000))]);
      this.emit('closed');
    }
  }
}

/// What the page's origin keeps: IndexedDB databases (by name), and the
/// number of localStorage and sessionStorage entries.
function storageOf(page) {
  return page.evaluate(async () => ({
    indexedDB: (await indexedDB.databases()).map((database) => database.name),
    localStorage: localStorage.length,
    sessionStorage: sessionStorage.length,
  }));
}

async function run(devices, args) {
  const [first, second, third] = devices;

  // 1. Two devices online, each in the chat with the peer.
  await Promise.all([first.start(), second.start()]);
  await first.step('send', () =>
    send(first.chat.chatbox, first.chat.textarea, args.message, args.stepTimeout * 1000),
  );
  first.emit('sent', { to: args.peer, body: args.message });
  second.emit('shown', { body: await second.shows('carbon', args.message) });
  for (const device of [first, second]) {
    device.emit('received', { from: args.peer, body: await device.shows('receive', args.reply) });
  }
  await first.screenshot();
  await second.screenshot();
  await first.close();

  // 2. The second device, its cache emptied, loads the chat again.
  await second.reloadWithoutCache();
  await second.history([args.message, args.reply]);
  await second.screenshot('-reloaded');
  await second.close();

  // 3. A device that was never online.
  await third.start();
  await third.history([args.message, args.reply]);
  await third.screenshot();
  await third.close();
}

async function main() {
  let args;
  try {
    args = devicesArgs(process.argv.slice(2));
  } catch (error) {
    emit('error', { step: 'arguments', message: error.message });
    process.exit(2);
  }
  const devices = args.devices.map((name) => new Device(name, args));
  const closeAll = () => Promise.all(devices.map((device) => device.close()));

  let finished = false;
  const limit = setTimeout(async () => {
    if (finished) return;
    emit('error', { step: 'time-limit', message: `no result within ${args.timeLimit} s` });
    try {
      await Promise.race([closeAll(), new Promise((r) => setTimeout(r, 10000))]);
    } finally {
      process.exit(2);
    }
  }, args.timeLimit * 1000);

  let status = 0;
  try {
    await run(devices, args);
    emit('done');
  } catch (error) {
    status = 1;
    emit('error', {
      device: error.device ?? null,
      step: error.step ?? 'run',
      message: truncate(error.message),
    });
    for (const device of devices) {
      if (device.page !== null && device.context !== null) {
        await reportFailure(device.page, `${args.screenshotPrefix}-${device.name}-failure.png`, device.emit);
      }
    }
  } finally {
    finished = true;
    await closeAll();
    clearTimeout(limit);
  }
  process.exit(status);
}

await main();
