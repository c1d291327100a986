"""Drives the server with the official MCP Python SDK client (2.x) in its default mode.

Usage: sdk_client.py SERVER_COMMAND [ARGS...]
Prints one JSON object: the negotiated protocol version, the tool names and a call result.
Run by the integration tests inside a throwaway virtual environment.
"""

import asyncio
import json
import sys

from mcp import Client, StdioServerParameters


async def main() -> None:
    server = StdioServerParameters(command=sys.argv[1], args=sys.argv[2:])
    async with Client(server) as client:
        tools = await client.list_tools()
        result = await client.call_tool("list_categories", {})
        print(
            json.dumps(
                {
                    "protocol_version": client.session.protocol_version,
                    "tools": [tool.name for tool in tools.tools],
                    "is_error": bool(result.is_error),
                    "structured": result.structured_content,
                }
            )
        )


asyncio.run(main())
