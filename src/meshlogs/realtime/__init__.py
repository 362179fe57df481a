"""The realtime gateway: WebSocket connections, subscriptions, batched RLS authorization, fan-out."""

from __future__ import annotations
