"""uvicorn, told to cut off a client whose request headers trickle in (408).

uvicorn times out idle keep-alive connections but has no limit on how long a
request's headers may take: a client sending a byte now and then keeps its
connection forever (slowloris). `header_timeout_protocol` is uvicorn's h11
protocol with that limit: from the moment a connection opens, or its previous
response ends, the next request's headers must be complete within the time
given, else the server answers 408 and closes the connection. Request bodies
are timed in the app (`slt_serve.uploads.timed`).
"""

from __future__ import annotations

import json

from uvicorn.protocols.http.h11_impl import H11Protocol

from slt_serve.settings import Settings


def header_timeout_protocol(seconds: float) -> type[H11Protocol]:
    """uvicorn's h11 protocol with a `seconds` limit on the arrival of request headers."""

    class HeaderTimeoutProtocol(H11Protocol):
        header_timeout_s = seconds

        def connection_made(self, transport) -> None:
            super().connection_made(transport)
            self._header_timer = None
            self._arm()

        def data_received(self, data: bytes) -> None:
            before = self.cycle
            super().data_received(data)
            if self.cycle is not before:  # a request's headers are in: its body is the app's
                self._disarm()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            self._arm()

        def connection_lost(self, exc) -> None:
            self._disarm()
            super().connection_lost(exc)

        def _arm(self) -> None:
            self._disarm()
            self._header_timer = self.loop.call_later(self.header_timeout_s, self._headers_late)

        def _disarm(self) -> None:
            if self._header_timer is not None:
                self._header_timer.cancel()
                self._header_timer = None

        def _headers_late(self) -> None:
            self._header_timer = None
            waiting = self.cycle is None or self.cycle.response_complete
            if not waiting or self.transport.is_closing():
                return
            self.transport.write(_response_408(self.header_timeout_s))
            self.transport.close()

    return HeaderTimeoutProtocol


def _response_408(seconds: float) -> bytes:
    body = json.dumps(
        {
            "error": {
                "code": "request_timeout",
                "message": f"the request headers took longer than {seconds:g} s to arrive",
            }
        }
    ).encode()
    head = (
        "HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\n"
        f"content-length: {len(body)}\r\nconnection: close\r\n\r\n"
    )
    return head.encode() + body


def uvicorn_options(settings: Settings) -> dict:
    """Keyword arguments for `uvicorn.run` / `uvicorn.Config` that apply the settings' timeouts."""
    return {"http": header_timeout_protocol(settings.header_timeout_s)}
