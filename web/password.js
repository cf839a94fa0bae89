// For devices without a certificate: log in with a password (SCRAM).
const params = new URLSearchParams(location.search);
const settings = {
  authentication: 'login',
  assets_path: '/dist/',
  bosh_service_url: 'https://' + location.host + '/http-bind',
  discover_connection_methods: false,
  allow_registration: false,
  use_system_emojis: true,
  view_mode: 'fullscreen',
  loglevel: 'warn',
};
if (params.get('transport') !== 'bosh' && 'WebSocket' in window) {
  settings.websocket_url = 'wss://' + location.host + '/xmpp-websocket';
}
// Converse's fullscreen footer shows its sponsors' logos from
// conversejs.org; this page loads nothing from other hosts. Converse
// leaves an element name that is already defined alone.
if (!customElements.get('converse-footer')) {
  customElements.define('converse-footer', class extends HTMLElement {});
}
converse.initialize(settings);
