// A real OpenID provider on loopback for the sign-in tests: the certified `oidc-provider`
// package with its built-in development login and consent pages.
//
//   node provider.mjs [--port N] --client-id ID --client-secret SECRET --redirect-uri URI...
//
// Each flag falls back to an environment variable (OIDC_PORT, OIDC_CLIENT_ID,
// OIDC_CLIENT_SECRET, OIDC_REDIRECT_URIS — space-separated). Any login name `<name>` (with
// any password) signs in as the account `<name>` whose email is `<name>@example.test`,
// verified. When listening it prints `READY <issuer>` and runs until killed.

import http from 'node:http';
import { parseArgs } from 'node:util';

import Provider from 'oidc-provider';

const { values } = parseArgs({
  options: {
    port: { type: 'string', default: process.env.OIDC_PORT ?? '0' },
    'client-id': { type: 'string', default: process.env.OIDC_CLIENT_ID ?? 'tandem-e2e' },
    'client-secret': { type: 'string', default: process.env.OIDC_CLIENT_SECRET },
    'redirect-uri': {
      type: 'string',
      multiple: true,
      default: (process.env.OIDC_REDIRECT_URIS ?? '').split(/\s+/).filter(Boolean),
    },
    // Keep scope-based claims (email) out of the ID token, as the OpenID Connect spec
    // reads when an access token is issued: the relying party must then use userinfo.
    'conform-id-token-claims': { type: 'boolean', default: false },
    // The issuer's host name. `localhost` makes the provider another site than a relying
    // party on 127.0.0.1 (same-site cookie rules then apply to the redirects back).
    'issuer-host': { type: 'string', default: process.env.OIDC_ISSUER_HOST ?? '127.0.0.1' },
  },
});

if (!values['client-secret'] || values['redirect-uri'].length === 0) {
  console.error('provider.mjs needs --client-secret and at least one --redirect-uri');
  process.exit(2);
}

// Listen first: with port 0 the issuer's port is only known afterwards.
const server = http.createServer();
await new Promise((resolve, reject) => {
  server.once('error', reject);
  server.listen(Number(values.port), '127.0.0.1', resolve);
});
const issuer = `http://${values['issuer-host']}:${server.address().port}`;

const provider = new Provider(issuer, {
  clients: [{
    client_id: values['client-id'],
    client_secret: values['client-secret'],
    redirect_uris: values['redirect-uri'],
    grant_types: ['authorization_code'],
    response_types: ['code'],
    // oidc-provider accepts client_secret_post as well for a client registered with
    // either secret method.
    token_endpoint_auth_method: 'client_secret_basic',
  }],
  async findAccount(ctx, sub) {
    return {
      accountId: sub,
      async claims() {
        return { sub, email: `${sub}@example.test`, email_verified: true };
      },
    };
  },
  claims: { openid: ['sub'], email: ['email', 'email_verified'] },
  scopes: ['openid', 'email'],
  conformIdTokenClaims: values['conform-id-token-claims'],
  // PKCE (S256) is required for every authorization request by default.
  features: { devInteractions: { enabled: true } },
  // Plain http on loopback: the cookies are not `secure` because the requests are not.
  cookies: { keys: ['tandem-e2e-oidc-cookie-key-0123456789'] },
  renderError(ctx, out) {
    ctx.type = 'html';
    ctx.body = `<!DOCTYPE html><title>oidc-provider error</title><pre id="oidc-error">${
      Object.entries(out).map(([key, value]) => `${key}: ${String(value).replace(/[<&]/g, '')}`).join('\n')
    }</pre>`;
  },
});

// Every request and failure goes to stderr: the test prints it when something breaks.
provider.use(async (ctx, next) => {
  await next();
  console.error(`${ctx.method} ${ctx.path} -> ${ctx.status}`);
});
for (const event of ['server_error', 'authorization.error', 'grant.error', 'userinfo.error',
  'discovery.error', 'jwks.error']) {
  provider.on(event, (_ctx, error) => {
    console.error(`${event}: ${error?.message ?? error} ${error?.error_description ?? ''}`);
  });
}

server.on('request', provider.callback());
console.log(`READY ${issuer}`);

for (const signal of ['SIGTERM', 'SIGINT']) {
  process.on(signal, () => process.exit(0));
}
