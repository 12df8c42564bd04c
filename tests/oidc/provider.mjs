// A real OpenID Provider (oidc-provider) on loopback for Sigil's tests.
//
// One client, `sigstore`, may use the custom grant `urn:sigil:test:id-token`, which returns a
// signed RS256 ID token for the subject/e-mail given in the request, with no browser. The same
// client may also run the authorization code flow with PKCE as a native app with a loopback
// redirect (`http://127.0.0.1:<any port>/auth/callback`), through the library's development
// login and consent pages: the login name becomes `sub`, and `email` too (`<name>@example.com`
// when the name is not an e-mail address). Discovery and JWKS are the library's own. Key
// rotation replaces the provider instance with one whose keystore starts with a new key (the
// library's keystore is fixed at construction), optionally still publishing the old keys.
//
// Usage: node provider.mjs [--port N]   (0 or absent: the OS picks a free port)
// Prints `listening <issuer>` once it accepts requests.
//
// Test-only control endpoints (not part of OpenID):
//   POST /__test/rotate?keep_old=true|false  → {"kid": "<new signing kid>"}

import { generateKeyPairSync, randomUUID } from 'node:crypto';
import http from 'node:http';
import Provider from 'oidc-provider';

const GRANT = 'urn:sigil:test:id-token';
const CLIENT_ID = 'sigstore';

const portArg = process.argv.indexOf('--port');
const port = portArg > 0 ? Number(process.argv[portArg + 1]) : 0;

function newKey() {
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  return { ...privateKey.export({ format: 'jwk' }), kid: randomUUID(), alg: 'RS256', use: 'sig' };
}

// The first key is the signing key; the rest are only published.
let keys = [newKey()];
let provider;
let issuer;

function build() {
  const p = new Provider(issuer, {
    clients: [{
      client_id: CLIENT_ID,
      application_type: 'native',
      token_endpoint_auth_method: 'none',
      grant_types: [GRANT, 'authorization_code'],
      response_types: ['code'],
      redirect_uris: ['http://127.0.0.1/auth/callback'],
      id_token_signed_response_alg: 'RS256',
    }],
    jwks: { keys },
    claims: { openid: ['sub'], email: ['email', 'email_verified'] },
    scopes: ['openid', 'email'],
    // The development login/consent pages stand in for a real user interface.
    features: { devInteractions: { enabled: true } },
    // Scope claims (email) go into the ID token of the code flow too, as Sigstore issuers do.
    conformIdTokenClaims: false,
    findAccount: (ctx, id) => ({
      accountId: id,
      claims: () => ({
        sub: id,
        email: id.includes('@') ? id : `${id}@example.com`,
        email_verified: true,
      }),
    }),
    cookies: { keys: [randomUUID()] },
    ttl: { IdToken: 600 },
  });
  p.proxy = false;

  p.registerGrantType(GRANT, async (ctx) => {
    const { subject, email } = ctx.oidc.params;
    if (!subject) {
      ctx.status = 400;
      ctx.body = { error: 'invalid_request', error_description: 'subject is required' };
      return;
    }
    const claims = { sub: subject };
    if (email) {
      claims.email = email;
      claims.email_verified = ctx.oidc.params.email_verified !== 'false';
    }
    const token = new ctx.oidc.provider.IdToken(claims, { ctx });
    token.scope = email ? 'openid email' : 'openid';
    const idToken = await token.issue({ use: 'idtoken' });
    ctx.body = { id_token: idToken, token_type: 'Bearer', expires_in: 600 };
  }, ['subject', 'email', 'email_verified']);
  return p;
}

const server = http.createServer((req, res) => {
  const url = new URL(req.url, issuer);
  if (req.method === 'POST' && url.pathname === '/__test/rotate') {
    const keepOld = url.searchParams.get('keep_old') !== 'false';
    const fresh = newKey();
    keys = keepOld ? [fresh, ...keys] : [fresh];
    provider = build();
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ kid: fresh.kid }));
    return;
  }
  provider.callback()(req, res);
});

// Node closes idle keep-alive connections after 5 s by default, racing clients that reuse them.
server.keepAliveTimeout = 120_000;
server.headersTimeout = 125_000;

server.listen(port, '127.0.0.1', () => {
  issuer = `http://127.0.0.1:${server.address().port}`;
  provider = build();
  console.log(`listening ${issuer}`);
});

for (const sig of ['SIGINT', 'SIGTERM']) {
  process.on(sig, () => server.close(() => process.exit(0)));
}
