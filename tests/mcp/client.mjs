// The discovery flow as an MCP client runs it, with the official SDK's client_credentials
// provider: connect to <public origin>/mcp → 401 with resource_metadata → RFC 9728 metadata →
// RFC 8414 metadata of the authorization server it names → a client_credentials token with
// `resource` → the call again, now allowed. Then one tool call.
//
// Usage: node client.mjs <gateway host:port> <public origin> <client_id> <secret> <issuer> <scope>
//
// Every URL the gateway's documents name is on the configured public origin, which does not
// resolve here: this fetch sends those requests to the gateway's loopback address (the
// gateway builds its documents from configuration, never from Host, so this is all it takes).
// It prints one JSON line: the tool's result, every request made, and the token obtained.
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { ClientCredentialsProvider } from "@modelcontextprotocol/sdk/client/auth-extensions.js";

const [gateway, origin, clientId, clientSecret, issuer, scope] = process.argv.slice(2);
const requests = [];
const viaGateway = async (input, init) => {
  const url = new URL(input instanceof Request ? input.url : String(input));
  if (url.origin !== origin) throw new Error(`a request off the public origin: ${url}`);
  const method = init?.method ?? (input instanceof Request ? input.method : "GET");
  const target = `http://${gateway}${url.pathname}${url.search}`;
  const resp = await fetch(input instanceof Request ? new Request(target, input) : target, init);
  requests.push({ method, path: url.pathname, status: resp.status, challenge: resp.headers.get("www-authenticate") });
  return resp;
};

const provider = new ClientCredentialsProvider({ clientId, clientSecret, expectedIssuer: issuer, scope });
const transport = new StreamableHTTPClientTransport(new URL(`${origin}/mcp`), {
  authProvider: provider,
  fetch: viaGateway,
});
const client = new Client({ name: "portcullis-it-client", version: "1.0.0" });
try {
  await client.connect(transport);
  const result = await client.callTool({ name: "whoami", arguments: {} });
  console.log(JSON.stringify({ result, requests, token: provider.tokens()?.access_token ?? null }));
  await client.close();
} catch (e) {
  console.log(JSON.stringify({ error: String(e?.stack ?? e), requests }));
  process.exitCode = 1;
}
