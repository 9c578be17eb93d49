"""The MCP front: Warden's tool catalog as MCP tools, each call a governed packet of the caller.

`catalog` (input schemas, descriptions, a call's arguments as a packet), `front` (the server's
handlers over a runtime), `identity` (agent tokens → agents), `http` (streamable HTTP at /mcp in
the gateway's app, as an OAuth 2.1 resource server) and `stdio` (`warden mcp`). Built on the `mcp`
SDK's low-level `Server`: the catalog is data (JSON Schemas), and `tools/list` depends on who asks.
"""
