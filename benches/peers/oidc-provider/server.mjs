// node oidc-provider as the load harness's peer for the issuer suite: the client_credentials
// grant with resource indicators, JWT access tokens signed (and for some resources encrypted)
// as the harness's configuration says. Started by `cargo bench --bench load -- --suite issuer`:
//
//   node server.mjs PORT CONFIG.json
//
// CONFIG.json: { "jwks": {keys: [private signing JWKs]}, "clients": [client metadata],
//   "resources": { "<resource URI>": { "sign_alg": "ES256", "encrypt": {"alg", "enc", "jwk"} } } }
import { createPublicKey, createSecretKey } from 'node:crypto';
import { readFileSync } from 'node:fs';

import Provider, { errors } from 'oidc-provider';

const [port, configPath] = process.argv.slice(2);
const config = JSON.parse(readFileSync(configPath, 'utf8'));
const issuer = `http://127.0.0.1:${port}`;

function encryptionKey(jwk) {
  return jwk.kty === 'oct' ? createSecretKey(Buffer.from(jwk.k, 'base64url')) : createPublicKey({ key: jwk, format: 'jwk' });
}

const provider = new Provider(issuer, {
  jwks: config.jwks,
  clients: config.clients,
  features: {
    devInteractions: { enabled: false },
    clientCredentials: { enabled: true },
    resourceIndicators: {
      enabled: true,
      defaultResource: () => undefined,
      useGrantedResource: () => true,
      getResourceServerInfo(ctx, resource) {
        const rs = config.resources[resource];
        if (!rs) throw new errors.InvalidTarget();
        const jwt = { sign: { alg: rs.sign_alg } };
        if (rs.encrypt) {
          jwt.encrypt = { alg: rs.encrypt.alg, enc: rs.encrypt.enc, key: encryptionKey(rs.encrypt.jwk) };
        }
        return { scope: 'read', audience: resource, accessTokenTTL: 3600, accessTokenFormat: 'jwt', jwt };
      },
    },
  },
});
provider.proxy = false;
provider.listen(Number(port), '127.0.0.1', () => {
  console.log(`oidc-provider listening on ${issuer}`);
});
