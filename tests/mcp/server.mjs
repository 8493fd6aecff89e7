// A tiny MCP server (the official SDK, stateless Streamable HTTP) for the discovery test: the
// upstream portcullis protects. It prints {"port": N} once it listens on 127.0.0.1, and
// answers one tool, `whoami`, with the claim header the gateway sent (x-auth-sub).
import http from "node:http";
import { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import { StreamableHTTPServerTransport } from "@modelcontextprotocol/sdk/server/streamableHttp.js";

const server = http.createServer(async (req, res) => {
  // Stateless: a server and transport per request, as the SDK's stateless example does.
  const mcp = new McpServer({ name: "portcullis-it-upstream", version: "1.0.0" });
  mcp.registerTool("whoami", { description: "Who the gateway says is calling" }, async () => ({
    content: [{ type: "text", text: `sub=${req.headers["x-auth-sub"] ?? "-"}` }],
  }));
  const transport = new StreamableHTTPServerTransport({ sessionIdGenerator: undefined, enableJsonResponse: true });
  res.on("close", () => {
    transport.close();
    mcp.close();
  });
  try {
    await mcp.connect(transport);
    await transport.handleRequest(req, res);
  } catch (e) {
    console.error(e);
    if (!res.headersSent) res.writeHead(500).end();
  }
});
server.listen(0, "127.0.0.1", () => {
  console.log(JSON.stringify({ port: server.address().port }));
});
