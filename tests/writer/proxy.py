"""A byte-level Postgres proxy for fault injection: the real server, a real socket, a cut wire.

It listens on a Unix socket (``DIR/.s.PGSQL.5432``) and forwards every connection to the real server.
Faults it can inject, without mocking anything the writer talks to:

- :meth:`PgProxy.drop_reply_after`: once a client sends bytes containing a marker, the server's
  reply is swallowed up to and including ReadyForQuery (which Postgres sends only after COMMIT), and
  then both sides are closed. The client sees a dead connection for a statement that *did* commit:
  the ambiguous failure an idempotency key exists for.
- :attr:`PgProxy.refusing`: new connections are closed at once and existing ones are cut, as if
  the database were down.
"""

from __future__ import annotations

import asyncio
import contextlib
import struct
from pathlib import Path

from psycopg.conninfo import conninfo_to_dict, make_conninfo


class PgProxy:
    def __init__(self, target_url: str, listen_dir: Path) -> None:
        info = conninfo_to_dict(target_url)
        self._target = str(Path(str(info["host"])) / f".s.PGSQL.{info.get('port') or 5432}")
        self._dir = listen_dir
        self._info = info
        self._server: asyncio.Server | None = None
        self._pairs: set[tuple[asyncio.StreamWriter, asyncio.StreamWriter]] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._marker: bytes | None = None
        self._refusing = False
        self.replies_dropped = 0
        self.connections = 0

    @property
    def url(self) -> str:
        """The target URL with the host replaced by this proxy."""
        info = dict(self._info)
        info["host"] = str(self._dir)
        info.pop("port", None)
        return make_conninfo("", **{k: v for k, v in info.items() if v is not None})

    async def start(self) -> None:
        self._dir.mkdir(parents=True, exist_ok=True)
        self._server = await asyncio.start_unix_server(self._handle, path=str(self._dir / ".s.PGSQL.5432"))

    async def stop(self) -> None:
        self.cut_all()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def drop_reply_after(self, marker: bytes) -> None:
        """Arm: the reply to the next client message containing ``marker`` is lost, after commit."""
        self._marker = marker

    @property
    def refusing(self) -> bool:
        return self._refusing

    @refusing.setter
    def refusing(self, value: bool) -> None:
        self._refusing = value
        if value:
            self.cut_all()

    def cut_all(self) -> None:
        for client, server in list(self._pairs):
            client.transport.abort()
            server.transport.abort()
        self._pairs.clear()

    async def _handle(self, c_reader: asyncio.StreamReader, c_writer: asyncio.StreamWriter) -> None:
        if self._refusing:
            c_writer.transport.abort()
            return
        self.connections += 1
        try:
            s_reader, s_writer = await asyncio.open_unix_connection(self._target)
        except OSError:
            c_writer.transport.abort()
            return
        pair = (c_writer, s_writer)
        self._pairs.add(pair)
        armed = asyncio.Event()
        up = asyncio.create_task(self._client_to_server(c_reader, s_writer, armed))
        down = asyncio.create_task(self._server_to_client(s_reader, c_writer, s_writer, armed))
        self._tasks.update((up, down))
        try:
            await asyncio.wait((up, down), return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (up, down):
                task.cancel()
            await asyncio.gather(up, down, return_exceptions=True)
            self._tasks.difference_update((up, down))
            self._pairs.discard(pair)
            c_writer.transport.abort()
            s_writer.transport.abort()

    async def _client_to_server(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, armed: asyncio.Event
    ) -> None:
        tail = b""
        while data := await reader.read(65536):
            marker = self._marker
            if marker is not None and marker in tail + data:
                self._marker = None
                armed.set()
            if marker is not None:
                tail = (tail + data)[-len(marker) :]
            writer.write(data)
            with contextlib.suppress(ConnectionError):
                await writer.drain()

    async def _server_to_client(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        server_writer: asyncio.StreamWriter,
        armed: asyncio.Event,
    ) -> None:
        pending = b""
        while data := await reader.read(65536):
            if not armed.is_set():
                writer.write(data)
                with contextlib.suppress(ConnectionError):
                    await writer.drain()
                continue
            # Armed: swallow whole messages (type byte, int32 length) until ReadyForQuery ('Z').
            pending += data
            while len(pending) >= 5:
                kind = pending[:1]
                (length,) = struct.unpack("!i", pending[1:5])
                if len(pending) < 1 + length:
                    break
                pending = pending[1 + length :]
                if kind == b"Z":
                    self.replies_dropped += 1
                    writer.transport.abort()
                    server_writer.transport.abort()
                    return
