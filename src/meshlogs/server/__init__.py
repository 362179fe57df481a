"""The one asyncio process: HTTP (REST, Auth, console) and the realtime WebSocket on one port."""

from __future__ import annotations
