"""The one boundary to upstream providers: a pooled keep-alive aiohttp session each.

Sessions are opened at start-up (`UpstreamPool.open`) and closed at shutdown; tests pass
their own base URLs (a real fake upstream on loopback). aiohttp's exceptions stop here, as the
project's own errors: a connection failure, or a body broken off, becomes `UpstreamUnreachable`
(502), a timeout `UpstreamTimeout` (504).

The URL of every request is the provider's configured base URL plus a path that
`proxy.paths.normalize_path` has checked and canonically encoded; it is passed to aiohttp as
already encoded, so nothing re-interprets it on the way. Bodies are asked for uncompressed
(`accept-encoding: identity`); one that comes compressed anyway is decoded here, so the client
always gets bytes that match the headers it is sent.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass

import aiohttp
from yarl import URL

from proxy.errors import UpstreamTimeout, UpstreamUnreachable
from proxy.settings import Settings, Timeouts


@dataclass(frozen=True, slots=True)
class Provider:
    name: str
    base_url: str
    api_key: str | None
    timeouts: Timeouts


class UpstreamResponse:
    """An upstream response whose headers have arrived; the body is read through here.

    It keeps the time spent waiting on the upstream (`waited`: for the headers, then for every
    read), so airuns' own overhead is the call's total minus that, measured in one place."""

    __slots__ = (
        "_response", "_stream", "status", "headers", "content_type", "headers_at", "waited"
    )  # fmt: skip

    def __init__(self, response: aiohttp.ClientResponse, stream: bool, sent_at: float) -> None:
        self._response = response
        self._stream = stream
        self.status = response.status
        self.headers = response.headers
        self.content_type = response.content_type
        self.headers_at = time.perf_counter()  # when the response headers were in
        self.waited = self.headers_at - sent_at

    @property
    def is_event_stream(self) -> bool:
        return self.content_type == "text/event-stream"

    @property
    def content_length(self) -> int | None:
        """The length of the body as relayed: unknown when the upstream did not say, or when
        it sent the body compressed (it is relayed decoded)."""
        encoding = self.headers.get("content-encoding", "identity").strip().lower()
        return self._response.content_length if encoding == "identity" else None

    async def iter_chunks(self) -> AsyncIterator[bytes]:
        """Body bytes as they arrive; the session's sock_read bounds each wait. Raises
        `UpstreamTimeout` when the upstream stalls and `UpstreamUnreachable` when it breaks
        off."""
        content = self._response.content
        while True:
            started = time.perf_counter()
            try:
                chunk = await content.readany()
            except (TimeoutError, aiohttp.ServerTimeoutError):
                raise UpstreamTimeout(self._stalled()) from None
            except aiohttp.ClientError as exc:
                raise UpstreamUnreachable(self._broke_off(exc)) from None
            finally:
                self.waited += time.perf_counter() - started
            if not chunk:
                return
            yield chunk

    async def read(self, limit: int) -> bytes:
        """The whole body, refused (`UpstreamUnreachable`) beyond `limit` bytes."""
        parts, size = [], 0
        async for chunk in self.iter_chunks():
            size += len(chunk)
            if size > limit:
                raise UpstreamUnreachable(f"upstream response over {limit} bytes")
            parts.append(chunk)
        return b"".join(parts)

    def _stalled(self) -> str:
        if self._stream:
            return "upstream stream stalled: no data within stream_idle"
        return "upstream stalled while sending its response"

    def _broke_off(self, exc: Exception) -> str:
        reason = str(exc) or type(exc).__name__
        if self._stream:
            return f"upstream closed the stream before it finished: {reason}"
        return f"upstream broke off the response: {reason}"

    def close(self) -> None:
        """Drop the connection (not back to the pool): ends the upstream request now."""
        self._response.close()

    def release(self) -> None:
        self._response.release()


class UpstreamPool:
    def __init__(self, providers: Mapping[str, Provider]) -> None:
        self.providers = dict(providers)
        self._sessions: dict[str, aiohttp.ClientSession] = {}
        self._timeouts: dict[tuple[str, bool], aiohttp.ClientTimeout] = {}

    @classmethod
    def from_settings(cls, settings: Settings) -> UpstreamPool:
        return cls(
            {
                name: Provider(
                    name,
                    str(URL(p.base_url.rstrip("/"))),
                    p.api_key or None,
                    settings.provider_timeouts(name),
                )
                for name, p in settings.providers.items()
            }
        )

    async def open(self) -> None:
        for name, provider in self.providers.items():
            connector = aiohttp.TCPConnector(limit=0, ttl_dns_cache=300, keepalive_timeout=60)
            self._sessions[name] = aiohttp.ClientSession(
                connector=connector,
                auto_decompress=True,
                skip_auto_headers=("User-Agent", "Accept-Encoding"),
            )
            t = provider.timeouts
            self._timeouts[name, False] = aiohttp.ClientTimeout(
                total=None, sock_connect=t.connect, sock_read=t.read
            )
            self._timeouts[name, True] = aiohttp.ClientTimeout(
                total=None, sock_connect=t.connect, sock_read=min(t.read, t.stream_idle)
            )

    async def close(self) -> None:
        sessions, self._sessions = self._sessions, {}
        for session in sessions.values():
            await session.close()

    async def send(
        self,
        provider: str,
        method: str,
        path: str,
        headers: Mapping[str, str],
        body: bytes | None,
        *,
        stream: bool,
    ) -> UpstreamResponse:
        """Send a request to `path` (normalised, encoded) under the provider's base URL; return
        once the response headers are in."""
        url = URL(self.providers[provider].base_url + path, encoded=True)
        started = time.perf_counter()
        try:
            response = await self._sessions[provider].request(
                method,
                url,
                headers=headers,
                data=body,
                timeout=self._timeouts[provider, stream],
                allow_redirects=False,
            )
        except (TimeoutError, aiohttp.ServerTimeoutError):
            raise UpstreamTimeout(f"upstream provider {provider!r} timed out") from None
        except aiohttp.ClientResponseError as exc:  # it answered, but not in readable HTTP
            raise UpstreamUnreachable(
                f"upstream provider {provider!r} sent a response airuns cannot read "
                f"({exc.message or type(exc).__name__})"
            ) from None
        except aiohttp.ClientError as exc:
            raise UpstreamUnreachable(
                f"upstream provider {provider!r} is unreachable ({type(exc).__name__})"
            ) from None
        return UpstreamResponse(response, stream, started)
