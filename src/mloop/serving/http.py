"""uvicorn's httptools protocol, sending each response's head and body in one `write`.

uvicorn writes the status line and headers when the app sends `http.response.start`, then the
body when it sends `http.response.body`: two writes, so two TCP segments on a keep-alive
connection, and on loopback two wake-ups of the client. For a response whose length is known
(`content-length`, every JSON answer of this server) this protocol holds the head back and
writes it together with the first body write. Streaming responses (chunked, e.g.
`/predict/stream`), `100 Continue` and a head whose body never comes (the connection closes)
are written as before.

`HTTP_PROTOCOL` is the class to hand to uvicorn (`http=`), or "auto" when httptools is not
installed or its protocol no longer builds its cycle as this subclass expects (checked by
serving.internals at start-up).
"""

from __future__ import annotations

from typing import Any

from mloop.serving.internals import AVAILABLE

_HEAD = b"HTTP/1.1 "
_KNOWN_LENGTH = b"\r\ncontent-length: "
_CONTINUE = b"HTTP/1.1 100 "


class _HeadWithBody:
    """One response's view of the connection's transport: holds a fixed-length response's
    head until its body is written, then writes both at once."""

    __slots__ = ("_transport", "_head", "_first")

    def __init__(self, transport: Any) -> None:
        self._transport = transport
        self._head: bytes | None = None
        self._first = True

    def write(self, data: bytes) -> None:
        if self._first:
            self._first = False
            if data.startswith(_HEAD) and _KNOWN_LENGTH in data and not data.startswith(_CONTINUE):
                self._head = data
                return
        head = self._head
        if head is not None:
            self._head = None
            data = head + data
        self._transport.write(data)

    def close(self) -> None:
        head = self._head
        if head is not None:
            self._head = None
            self._transport.write(head)
        self._transport.close()

    def is_closing(self) -> bool:
        return self._transport.is_closing()

    def __getattr__(self, name: str) -> Any:  # anything else uvicorn may ask of a transport
        return getattr(self._transport, name)


def protocol_for(usable: bool) -> Any:
    """The one-write protocol when uvicorn's internals allow it, else uvicorn's "auto"."""
    return OneWriteHttpProtocol if usable else "auto"


if not AVAILABLE.httptools_cycle:  # no httptools, or another uvicorn (logged at start-up)
    OneWriteHttpProtocol: Any = None
else:
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    class OneWriteHttpProtocol(HttpToolsProtocol):
        """uvicorn's httptools protocol; each request's cycle writes through `_HeadWithBody`."""

        def on_headers_complete(self) -> None:
            super().on_headers_complete()
            cycle = self.cycle
            if cycle is not None and type(cycle.transport) is not _HeadWithBody:
                cycle.transport = _HeadWithBody(cycle.transport)


HTTP_PROTOCOL: Any = protocol_for(AVAILABLE.httptools_cycle)
