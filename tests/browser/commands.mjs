// Drives Debian's Chromium through Sigil's web chat (Converse.js) for
// crates/sigil/tests/browser.rs: the browser presents a device's client
// certificate (from the NSS database under --home, selected without a
// dialog by a managed AutoSelectCertificateForUrls policy the caller
// wrote), Converse logs in with SASL EXTERNAL, and the user manages the
// account's devices from Converse's own ad-hoc commands UI (XEP-0050):
// settings, the Commands tab, the server's commands, "List my devices",
// then "Revoke a device" with --revoke chosen; then the server's devices
// page. Screenshots of the list, the revocation and the page are kept.
//
//   node commands.mjs --url https://localhost:PORT/ --home DIR --user-data-dir DIR \
//     --screenshot-prefix PATH --jid alice@localhost --server localhost \
//     --revoke phone [--time-limit 120] [--step-timeout 40] [--chromium /usr/bin/chromium]
//
// Every result is one JSON object on a line of standard output:
//   {"event":"launched","version":...}
//   {"event":"loaded",...}, {"event":"logged-in","jid":...}, {"event":"password-fields","count":0}
//   {"event":"commands","names":[...]}            (the server's commands, as listed)
//   {"event":"devices","text":...}                (the list's text)
//   {"event":"screenshot","path":...}             (PATH-list.png, then PATH-revoked.png)
//   {"event":"revoke-offered","options":[...]}    (the devices the form offers)
//   {"event":"revoked","text":...}                (what the server answered)
//   {"event":"devices-page","status":...,"rows":[...]}  (then /devices, PATH-page.png)
//   {"event":"done"}
// and, as evidence, "console", "pageerror", "http-error", "request-failed",
// "websocket" and "frame". On failure: {"event":"error","step":...,"message":...},
// PATH-failure.png, "page-text", and exit status 1. The whole run is
// bounded by --time-limit (exit status 2); the browser is always closed.

import { emitter, login, parseArgs, runOneBrowser, truncate } from './lib.mjs';

const emit = emitter();

function commandArgs(argv) {
  const args = parseArgs(
    argv,
    {
      '--url': 'url',
      '--home': 'home',
      '--user-data-dir': 'userDataDir',
      '--screenshot-prefix': 'screenshotPrefix',
      '--jid': 'jid',
      '--server': 'server',
      '--revoke': 'revoke',
      '--time-limit': 'timeLimit',
      '--step-timeout': 'stepTimeout',
      '--chromium': 'chromium',
    },
    { timeLimit: 120, stepTimeout: 40, chromium: '/usr/bin/chromium' },
    ['url', 'home', 'userDataDir', 'screenshotPrefix', 'jid', 'server', 'revoke'],
  );
  args.timeLimit = Number(args.timeLimit);
  args.stepTimeout = Number(args.stepTimeout);
  return args;
}

/// The command link named `name` in the listed commands.
function commandLink(panel, name) {
  return panel.locator('a[data-command-node]', { hasText: name }).first();
}

async function run(page, args, step) {
  const timeout = args.stepTimeout * 1000;

  step.name = 'login';
  await login(page, args.url, args.jid, timeout, emit);

  // Converse's settings: the cog in the control box, then its Commands tab
  // (the modal opens on About; its tabs appear once it is drawn).
  step.name = 'open-settings';
  await page.locator('.controlbox-heading__btn.show-client-info').first().click({ timeout });
  await page.locator('#commands-tab').first().click({ timeout });
  const panel = page.locator('converse-adhoc-commands').first();
  await panel.waitFor({ timeout });

  step.name = 'list-commands';
  await panel.locator('input[name="jid"]').first().fill(args.server, { timeout });
  await panel.locator('input[type="submit"]').first().click({ timeout });
  await commandLink(panel, 'List my devices').waitFor({ timeout });
  const names = (await panel.locator('a[data-command-node]').allInnerTexts()).map((t) => t.trim());
  emit('commands', { names });

  step.name = 'list-devices';
  await commandLink(panel, 'List my devices').click({ timeout });
  // The result form: one heading and fields per device.
  const listed = panel.locator('form.converse-form', { hasText: args.revoke }).last();
  await listed.waitFor({ timeout });
  emit('devices', { text: truncate(await panel.innerText()) });
  const listShot = `${args.screenshotPrefix}-list.png`;
  await page.screenshot({ path: listShot, timeout });
  emit('screenshot', { path: listShot });

  step.name = 'revoke';
  await commandLink(panel, 'Revoke a device').click({ timeout });
  const select = panel.locator('select[name="devices"]').first();
  await select.waitFor({ timeout });
  const options = (await select.locator('option').allInnerTexts()).map((t) => t.trim());
  emit('revoke-offered', { options });
  const value = await select
    .locator('option', { hasText: args.revoke })
    .first()
    .getAttribute('value', { timeout });
  await select.selectOption(value, { timeout });
  await panel.locator('input[data-action="complete"]').first().click({ timeout });
  // Converse shows the server's note on top of the panel.
  const answer = panel.getByText(`Revoked ${args.revoke}`).first();
  await answer.waitFor({ timeout });
  emit('revoked', { text: (await answer.innerText()).trim() });
  const revokedShot = `${args.screenshotPrefix}-revoked.png`;
  await page.screenshot({ path: revokedShot, timeout });
  emit('screenshot', { path: revokedShot });

  // The server's own devices page, with the same certificate.
  step.name = 'devices-page';
  const response = await page.goto(new URL('/devices', args.url).href, { timeout, waitUntil: 'load' });
  const rows = (await page.locator('tbody tr').allInnerTexts()).map((t) => t.trim());
  emit('devices-page', { status: response?.status() ?? null, rows });
  const pageShot = `${args.screenshotPrefix}-page.png`;
  await page.screenshot({ path: pageShot, timeout, fullPage: true });
  emit('screenshot', { path: pageShot });
}

await runOneBrowser(emit, commandArgs, run, (args) => `${args.screenshotPrefix}-failure.png`);
