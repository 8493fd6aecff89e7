// node oidc-provider as an independent authorization server for tests/it/opaque.rs: it
// issues opaque access tokens (client_credentials, resource indicator https://api.test,
// accessTokenFormat "opaque") and introspects them (RFC 7662). The client `app` gets tokens;
// `gw` (client_secret_basic) is the gateway introspecting. It prints {"port": N} once it
// listens on 127.0.0.1.
import http from "node:http";
import Provider from "oidc-provider";

const server = http.createServer();
server.listen(0, "127.0.0.1", () => {
  const { port } = server.address();
  const provider = new Provider(`http://127.0.0.1:${port}`, {
    clients: [
      {
        client_id: "app",
        client_secret: "app-secret-0123456789",
        grant_types: ["client_credentials"],
        redirect_uris: [],
        response_types: [],
        scope: "read write",
      },
      {
        client_id: "gw",
        client_secret: "gw-introspection-secret",
        grant_types: [],
        redirect_uris: [],
        response_types: [],
      },
    ],
    scopes: ["read", "write"],
    features: {
      clientCredentials: { enabled: true },
      introspection: { enabled: true },
      devInteractions: { enabled: false },
      resourceIndicators: {
        enabled: true,
        defaultResource: () => "https://api.test",
        useGrantedResource: () => true,
        getResourceServerInfo: () => ({
          scope: "read write",
          audience: "https://api.test",
          accessTokenTTL: 300,
          accessTokenFormat: "opaque",
        }),
      },
    },
  });
  server.on("request", provider.callback());
  console.log(JSON.stringify({ port }));
});
