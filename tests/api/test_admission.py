"""The admission gate: at most ``slots`` requests at work, the rest in arrival order, each
leaving when its answer starts; evidence streaming in and the built-in TSA pass by."""

from __future__ import annotations

import asyncio

from api.admission import AdmissionGate


def _scope(method: str, path: str) -> dict:
    return {"type": "http", "method": method, "path": path, "headers": []}


def test_at_most_slots_at_work_served_in_arrival_order_and_free_once_the_answer_starts() -> None:
    async def main() -> None:
        at_work, most, started = 0, 0, []
        release = asyncio.Event()

        async def app(scope, receive, send):  # type: ignore[no-untyped-def]
            nonlocal at_work, most
            gated = scope["method"] == "GET"
            at_work += gated
            most = max(most, at_work)
            started.append(scope["path"])
            await release.wait()
            at_work -= gated
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await asyncio.sleep(0.05)  # the body goes on after the slot is free
            await send({"type": "http.response.body", "body": b""})

        gate = AdmissionGate(app, slots=3)

        async def send(_message):  # type: ignore[no-untyped-def]
            return None

        requests = [asyncio.create_task(gate(_scope("GET", f"/api/v1/cases/{n}"), None, send)) for n in range(10)]
        for _ in range(20):
            await asyncio.sleep(0)
        assert started == [f"/api/v1/cases/{n}" for n in range(3)]  # the rest wait
        # Streamed evidence and the built-in TSA are not held behind them.
        free = [asyncio.create_task(gate(_scope(m, p), None, send)) for m, p in (
            ("POST", "/api/v1/cases/x/evidence"), ("PATCH", "/api/v1/uploads/u1"), ("POST", "/tsa"))]
        for _ in range(20):
            await asyncio.sleep(0)
        assert started[3:] == ["/api/v1/cases/x/evidence", "/api/v1/uploads/u1", "/tsa"]
        release.set()
        await asyncio.gather(*requests, *free)
        assert started[6:] == [f"/api/v1/cases/{n}" for n in range(3, 10)]  # in arrival order
        assert most == 3

    asyncio.run(main())


def test_a_failing_request_gives_its_slot_back() -> None:
    async def main() -> None:
        async def app(scope, receive, send):  # type: ignore[no-untyped-def]
            if scope["path"].endswith("boom"):
                raise RuntimeError("boom")
            await send({"type": "http.response.start", "status": 200, "headers": []})

        gate = AdmissionGate(app, slots=1)
        sent = []

        async def send(message):  # type: ignore[no-untyped-def]
            sent.append(message["type"])

        for _ in range(3):
            try:
                await gate(_scope("GET", "/api/v1/boom"), None, send)
            except RuntimeError:
                pass
        await asyncio.wait_for(gate(_scope("GET", "/api/v1/cases"), None, send), 5)
        assert sent == ["http.response.start"]

    asyncio.run(main())


def test_a_request_whose_client_left_while_it_waited_is_dropped_and_a_waiting_body_kept() -> None:
    async def main() -> None:
        release = asyncio.Event()
        seen: list[tuple[str, bytes]] = []

        async def app(scope, receive, send):  # type: ignore[no-untyped-def]
            message = await receive()
            seen.append((scope["path"], message.get("body", b"")))
            await release.wait()
            await send({"type": "http.response.start", "status": 200, "headers": []})

        gate = AdmissionGate(app, slots=1)

        def client(body: bytes, leaves: asyncio.Event):  # type: ignore[no-untyped-def]
            sent = [{"type": "http.request", "body": body, "more_body": False}]

            async def receive():  # type: ignore[no-untyped-def]
                if sent:
                    return sent.pop(0)
                await leaves.wait()
                return {"type": "http.disconnect"}
            return receive

        async def send(_message):  # type: ignore[no-untyped-def]
            return None

        stays, leaves = asyncio.Event(), asyncio.Event()
        first = asyncio.create_task(gate(_scope("GET", "/api/v1/a"), client(b"", stays), send))
        gone_scope = _scope("GET", "/api/v1/gone")
        gone = asyncio.create_task(gate(gone_scope, client(b"", leaves), send))
        waiting = asyncio.create_task(gate(_scope("POST", "/api/v1/cases"), client(b'{"title": "x"}', stays), send))
        for _ in range(20):
            await asyncio.sleep(0)
        leaves.set()  # the second client gives up while it waits its turn
        await asyncio.wait_for(gone, 5)
        assert gone_scope.get("evidence.client_gone") is True
        release.set()
        await asyncio.wait_for(asyncio.gather(first, waiting), 5)
        # The one that left was never worked on; the waiting POST got its body whole.
        assert seen == [("/api/v1/a", b""), ("/api/v1/cases", b'{"title": "x"}')]

    asyncio.run(main())


def test_a_waiting_request_whose_client_half_closed_is_dropped_one_at_work_is_answered() -> None:
    """After its whole request, a client's FIN (``api.http.HALF_CLOSED``): the request waiting
    its turn is dropped and its connection ended through the protocol's ``drop``; the one
    already at work is still answered (a half-close may still read the answer)."""
    from api.http import HALF_CLOSED

    async def main() -> None:
        release = asyncio.Event()
        worked: list[str] = []
        answered: list[str] = []

        async def app(scope, receive, send):  # type: ignore[no-untyped-def]
            worked.append(scope["path"])
            await release.wait()
            await send({"type": "http.response.start", "status": 200, "headers": []})

        gate = AdmissionGate(app, slots=1)
        dropped: list[str] = []

        def client(scope: dict, fin: asyncio.Event):  # type: ignore[no-untyped-def]
            sent = [{"type": "http.request", "body": b"", "more_body": False}]

            async def receive():  # type: ignore[no-untyped-def]
                if sent:
                    return sent.pop(0)
                await fin.wait()
                # As uvicorn's protocol does on a FIN after a whole request (api.http._Edge).
                scope.setdefault("extensions", {})[HALF_CLOSED] = {"drop": lambda: dropped.append(scope["path"])}
                return {"type": "http.request", "body": b"", "more_body": False}
            return receive

        def sender(scope: dict):  # type: ignore[no-untyped-def]
            async def send(message):  # type: ignore[no-untyped-def]
                if message["type"] == "http.response.start":
                    answered.append(scope["path"])
            return send

        fins = {path: asyncio.Event() for path in ("/api/v1/at-work", "/api/v1/waiting", "/api/v1/stays")}
        scopes = {path: _scope("GET", path) for path in fins}
        tasks = {path: asyncio.create_task(gate(scopes[path], client(scopes[path], fins[path]), sender(scopes[path])))
                 for path in fins}
        for _ in range(20):
            await asyncio.sleep(0)
        fins["/api/v1/at-work"].set()
        fins["/api/v1/waiting"].set()
        await asyncio.wait_for(tasks["/api/v1/waiting"], 5)
        assert scopes["/api/v1/waiting"].get("evidence.client_gone") is True
        assert dropped == ["/api/v1/waiting"]
        release.set()
        await asyncio.wait_for(asyncio.gather(*tasks.values()), 5)
        assert worked == ["/api/v1/at-work", "/api/v1/stays"]
        assert answered == ["/api/v1/at-work", "/api/v1/stays"]

    asyncio.run(main())
