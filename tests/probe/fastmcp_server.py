"""A minimal MCP server from the official Python SDK (PyPI `mcp`), as its
quickstart writes one: default settings, one tool, Streamable HTTP at
http://127.0.0.1:PORT/mcp. In mcp 2.x FastMCP is called MCPServer (same
server, renamed); mcp 1.x is served too, so the pin can move either way.

Usage: python fastmcp_server.py PORT
"""

import sys

PORT = int(sys.argv[1])

try:
    from mcp.server.mcpserver import MCPServer
except ImportError:  # mcp 1.x
    MCPServer = None


def add(a: int, b: int) -> int:
    """Adds two integers."""
    return a + b


if MCPServer is not None:
    server = MCPServer("probe-target")
    server.tool()(add)
    server.run("streamable-http", host="127.0.0.1", port=PORT)
else:
    from mcp.server.fastmcp import FastMCP

    server = FastMCP("probe-target", host="127.0.0.1", port=PORT)
    server.tool()(add)
    server.run("streamable-http")
