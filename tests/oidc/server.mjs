// OpenID Provider for mcp-guard end-to-end tests (oidc-provider, OpenID-certified).
//
//   node server.mjs <port>    ->  stdout: "READY http://127.0.0.1:<port>"
//
// Run it with the Node printed by install.sh (oidc-provider wants Node 22 LTS+).
// Clients: mcp-test-client / mcp-test-secret and mcp-other-client / mcp-other-secret,
// client_credentials only. A token request with resource=<http(s) URL> gets an
// RS256 `at+jwt` access token whose aud is that URL; without resource it gets an
// opaque token, which a JWT-validating resource server must refuse.
import { generateKeyPairSync, randomBytes, randomUUID } from 'node:crypto';
import { createRequire } from 'node:module';
import { pathToFileURL } from 'node:url';

// stdout carries exactly one line, READY, which callers wait for; oidc-provider
// prints its notices with console.info, so everything else goes to stderr.
console.log = console.info = console.warn;

// The packages live in the git-ignored .tools/oidc (see install.sh), not beside this file.
const require = createRequire(new URL('../../.tools/oidc/package.json', import.meta.url));
const load = (id) => import(pathToFileURL(require.resolve(id)).href);
const { default: Provider, errors } = await load('oidc-provider');
// Same in-memory store as the default, minus the "development-only adapter" warning.
const { createMemoryAdapter } = await load('oidc-provider/lib/adapters/memory_adapter.js');

const port = Number(process.argv[2]);
if (!Number.isInteger(port) || port < 1 || port > 65535) {
  console.error('usage: server.mjs <port>');
  process.exit(2);
}
const issuer = `http://127.0.0.1:${port}`;

const SCOPES = ['mcp:tools', 'mcp:read', 'mcp:admin'];
const DEFAULT_SCOPE = 'mcp:tools';
const TOKEN_TTL = 600; // seconds; long enough for any test, short enough to look real

// A fresh key per run, so tests cannot bake a key in and must go through the JWKS.
const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
const signingKey = { ...privateKey.export({ format: 'jwk' }), kid: randomUUID(), alg: 'RS256', use: 'sig' };

const client = (id, secret) => ({
  client_id: id,
  client_secret: secret,
  grant_types: ['client_credentials'],
  response_types: [],
  redirect_uris: [],
  // One method per client is registered, but oidc-provider accepts basic and post
  // interchangeably for a client_secret_* client.
  token_endpoint_auth_method: 'client_secret_basic',
});

const provider = new Provider(issuer, {
  adapter: createMemoryAdapter(),
  clients: [client('mcp-test-client', 'mcp-test-secret'), client('mcp-other-client', 'mcp-other-secret')],
  clientAuthMethods: ['client_secret_basic', 'client_secret_post'],
  jwks: { keys: [signingKey] },
  // Listed so discovery advertises them (scopes_supported).
  scopes: ['openid', ...SCOPES],
  cookies: { keys: [randomBytes(32).toString('base64url')] },
  // Every hook the defaults would "notice" about is set, to keep the output quiet.
  ttl: { AccessToken: TOKEN_TTL, ClientCredentials: TOKEN_TTL },
  clientBasedCORS: () => false,
  features: {
    devInteractions: { enabled: false }, // no login UI: machine clients only
    clientCredentials: { enabled: true },
    resourceIndicators: {
      enabled: true,
      defaultResource: () => undefined, // no resource -> opaque token, on purpose
      getResourceServerInfo(ctx, resource) {
        // Any http(s) URL is a valid resource: tests pick the gateway's URL at run time.
        if (!/^https?:$/.test(URL.parse(resource)?.protocol ?? '')) {
          throw new errors.InvalidTarget('resource must be an http(s) URL');
        }
        // client_credentials grants nothing when scope is omitted; give MCP a usable default.
        // The grant reads the scope parameter after this hook has run.
        if (ctx.oidc.params.grant_type === 'client_credentials' && !ctx.oidc.params.scope) {
          ctx.oidc.params.scope = DEFAULT_SCOPE;
        }
        return {
          scope: SCOPES.join(' '),
          audience: resource,
          accessTokenTTL: TOKEN_TTL,
          accessTokenFormat: 'jwt',
          jwt: { sign: { alg: 'RS256' } },
        };
      },
    },
  },
});

const server = provider.listen(port, '127.0.0.1');
server.on('listening', () => process.stdout.write(`READY ${issuer}\n`));
server.on('error', (err) => {
  console.error(`oidc test provider: ${err.message}`);
  process.exit(1);
});

// Callers stop us with SIGTERM; keep-alive sockets would otherwise hold close() open.
for (const signal of ['SIGTERM', 'SIGINT']) {
  process.on(signal, () => {
    server.close(() => process.exit(0));
    server.closeAllConnections();
  });
}
