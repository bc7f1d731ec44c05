"""HTTP for both hooks, written once on ``httpcore``, below the domain: it knows requests, not AOM.

Built on ``httpcore`` (the engine under ``httpx``, in Airflow's dependency tree on 2.11 and 3.x)
because it lets the provider own what a hostile or broken server can abuse. It takes a
:class:`~airflow_provider_aom.wire.HttpRequest` and returns an
:class:`~airflow_provider_aom.wire.ApiResponse`, and imports nothing above :mod:`~airflow_provider_aom.wire`
(and the leaf modules ``exceptions``, ``escaping``, ``vocabulary``).

* **Time** (:mod:`.deadline`). Every request runs under an absolute deadline that bounds each
  socket operation, so a trickling server or proxy ends at the deadline instead of never.
* **Size** (:mod:`.bodies`). Bodies are decoded here and counted after decompression, capped.
* **Whether it was sent** (:mod:`.errors`). A failure before a byte of *this* request was
  written provably started nothing (``sent=False``); the submit may then be re-sent.
* **TLS and proxies** (:mod:`.settings`). ``extra.verify`` and ``extra.proxies`` win over the
  environment, resolved per request; the CA bundle chosen also verifies an ``https://`` proxy.
* **Pools** (:mod:`.pools`). :class:`SyncTransport` serves
  :class:`~airflow_provider_aom.hooks.aom.AomHook`; :class:`AsyncTransport` serves
  :class:`~airflow_provider_aom.hooks.aom.AomAsyncHook`. They share every rule and differ only
  in how they wait.

**Fresh connections for what may not be sent twice.** A request whose call is not idempotent
(``RequestFacts.idempotent`` False: the execute POST, node operations) never goes out on a
kept-alive connection, in the sync pools, the async stack and through a proxy alike: it gets a
connection made for it (the sync and proxied drivers open a one-off pool; the async stack
connects anew, closing its least recently used idle socket so the cap holds). A server may
close an idle connection at any moment, and its FIN can cross our request on the wire: the
request was written (so it counts as sent, and a submit becomes ambiguous) yet no server read
it. No check made before sending (readable, not expired) closes that window; a connection that
has carried no request yet is one no idle timeout can have closed. It costs a submit one
handshake. Reads keep reusing connections: they are re-sent safely.

**Closing.** ``SyncTransport.close()`` closes a hook's sockets (``AomHook.close()`` and
``with AomHook() as hook``). Async pools are shared by every hook on an event loop, so an async
hook holds a *lease* (a weak reference: a hook dropped without closing lets go of it too) from its
first request; ``AsyncTransport.aclose()`` (``AomAsyncHook.aclose()``, ``async with``) gives it
up, and the last lease to go closes the loop's pools. Whatever is still open when the loop ends
is closed then: the pools hold an async generator that ``asyncio.run`` (its
``shutdown_asyncgens()``) closes, which closes the sockets. Closing one hook never breaks another.
"""

from airflow_provider_aom.transport.bodies import BodyReader
from airflow_provider_aom.transport.deadline import CallBudget
from airflow_provider_aom.transport.errors import classify
from airflow_provider_aom.transport.pools import (
    KEEPALIVE_EXPIRY,
    LOOP_TURN_SECONDS,
    MAX_CONNECTIONS_PER_HOST,
    AsyncTransport,
    Exchange,
    SyncTransport,
)
from airflow_provider_aom.transport.settings import (
    ACCEPT_ENCODING,
    CA_BUNDLE_ENV,
    USER_AGENT,
    PoolKey,
    TransportSettings,
    Trust,
    proxy_for,
    ssl_context,
    trust_for,
    wire_headers,
)

__all__ = [
    "ACCEPT_ENCODING",
    "CA_BUNDLE_ENV",
    "KEEPALIVE_EXPIRY",
    "LOOP_TURN_SECONDS",
    "MAX_CONNECTIONS_PER_HOST",
    "USER_AGENT",
    "AsyncTransport",
    "BodyReader",
    "CallBudget",
    "Exchange",
    "PoolKey",
    "SyncTransport",
    "TransportSettings",
    "Trust",
    "classify",
    "proxy_for",
    "ssl_context",
    "trust_for",
    "wire_headers",
]
