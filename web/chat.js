// The certificate login page: logged in by the TLS client certificate the
// browser presents, with SASL EXTERNAL and no password field. The server
// put the JID of the certificate it saw on this page's connection in the
// page's <meta name="sigil-jid">.
const jid = document.querySelector('meta[name="sigil-jid"]')?.content ?? '';
const params = new URLSearchParams(location.search);
const settings = {
  authentication: 'external',
  auto_login: jid !== '',
  assets_path: '/dist/',
  bosh_service_url: 'https://' + location.host + '/http-bind',
  connection_options: { mechanisms: [converse.env.Strophe.SASLExternal] },
  discover_connection_methods: false,
  allow_registration: false,
  // Nothing from other hosts: the emoji are the system's.
  use_system_emojis: true,
  view_mode: 'fullscreen',
  loglevel: 'warn',
};
// WebSocket first; BOSH when asked for (?transport=bosh) or when the
// browser has no WebSocket.
if (params.get('transport') !== 'bosh' && 'WebSocket' in window) {
  settings.websocket_url = 'wss://' + location.host + '/xmpp-websocket';
}
if (jid !== '') {
  settings.jid = jid;
}
// Converse's fullscreen footer shows its sponsors' logos from
// conversejs.org; this page loads nothing from other hosts. Converse
// leaves an element name that is already defined alone.
if (!customElements.get('converse-footer')) {
  customElements.define('converse-footer', class extends HTMLElement {});
}
converse.initialize(settings);
