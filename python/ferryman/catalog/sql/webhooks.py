"""Webhooks and their outbox. ``Tx.event`` writes a ``webhook_deliveries`` row for each
subscribed webhook in the transaction of the event itself, so a delivery exists exactly when
its event does. Any process takes due rows under a lease (``claim_deliveries``) and settles
each attempt (``finish_deliveries``): delivered, due again after a backoff, or failed for good.
A process that dies mid-delivery leaves its lease to run out, and the delivery is sent again
with the same ``webhook-id`` (receivers drop repeats by it)."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import msgspec

from ferryman import webhooks
from ferryman.catalog import models as m
from ferryman.catalog.protocol import DeliveryJob, DeliveryOutcome
from ferryman.catalog.rules import check_id, later, now
from ferryman.catalog.sql.db import Database, Row, Tx, get_or_404, page_of, to, update_logged
from ferryman.errors import Invalid, NotFound
from ferryman.ids import is_id, new_id

__all__ = ["ATTEMPTS_LOGGED", "Webhooks"]

ATTEMPTS_LOGGED = 10  # the last attempts kept with each delivery


def _view(row: Row) -> Row:
    out = {k: v for k, v in row.items() if k != "secret"}
    out["events"] = json.loads(out["events"])
    out["disabled"] = bool(out["disabled"])
    return out


def _delivery_view(row: Row) -> Row:
    out = {k: v for k, v in row.items() if k not in ("lease_owner", "lease_until")}
    out["payload"] = json.loads(out["payload"])
    out["log"] = json.loads(out["log"])
    if out["state"] != "pending":
        out["next_attempt_at"] = None
    return out


def _check_events(events: Sequence[str]) -> list[str]:
    for i, e in enumerate(events):
        if e != "*" and e not in webhooks.EVENT_TYPES and not (e.endswith(".*") and any(
                t.startswith(e[:-1]) for t in webhooks.EVENT_TYPES)):  # fmt: skip
            raise Invalid(f"no webhook event {e!r}", {f"events[{i}]": [f"one of {', '.join(webhooks.EVENT_TYPES)}"]})
    return sorted(set(events))


class Webhooks:
    db: Database

    def on_webhook_queued(self, wake: Callable[[], None]) -> None:
        self.db.on_queued.append(wake)

    async def create_webhook(self, actor: str, body: m.WebhookCreate, secret: str) -> m.Webhook:
        """Stores a webhook (its URL checked by the caller: ``services.webhooks``)."""
        url, events = body.url, _check_events(body.events)

        def run(tx: Tx) -> Row:
            t = now()
            row: Row = {"id": new_id("webhook"), "url": url, "events": json.dumps(events), "description": body.description,
                        "secret": secret, "disabled": 0, "created_at": t, "updated_at": t}  # fmt: skip
            tx.insert("webhooks", row)
            view = _view(row)
            tx.event("create", "webhook", row["id"], None, view)
            return {**view, "secret": secret}

        return to(m.Webhook, await self.db.tx(actor, run, changes_answers=False))

    async def get_webhook(self, webhook_id: str) -> m.Webhook:
        check_id(webhook_id, "webhook", "webhook")
        return to(m.Webhook, await self.db.read(lambda tx: _view(get_or_404(tx, "webhooks", webhook_id, "webhook"))))

    async def list_webhooks(self, limit: int, cursor: str | None) -> m.Page[m.Webhook]:
        def run(tx: Tx) -> m.Page[Row]:
            page = tx.page("webhooks", limit, cursor)
            page.items = [_view(r) for r in page.items]
            return page

        return page_of(m.Webhook, await self.db.read(run))

    async def patch_webhook(self, actor: str, webhook_id: str, body: m.WebhookPatch) -> m.Webhook:
        check_id(webhook_id, "webhook", "webhook")
        changes: Row = {}
        if body.url is not msgspec.UNSET:
            changes["url"] = body.url
        if body.events is not msgspec.UNSET:
            changes["events"] = json.dumps(_check_events(body.events))
        if body.description is not msgspec.UNSET:
            changes["description"] = body.description
        if body.disabled is not msgspec.UNSET:
            changes["disabled"] = int(body.disabled)

        def run(tx: Tx) -> Row:
            before = _view(get_or_404(tx, "webhooks", webhook_id, "webhook"))
            return update_logged(tx, "webhooks", webhook_id, "webhook", changes, before, _view)

        return to(m.Webhook, await self.db.tx(actor, run, changes_answers=False))

    async def delete_webhook(self, actor: str, webhook_id: str) -> None:
        """Removes a webhook and its deliveries (sent or not)."""
        check_id(webhook_id, "webhook", "webhook")

        def run(tx: Tx) -> None:
            before = _view(get_or_404(tx, "webhooks", webhook_id, "webhook"))
            tx.run("DELETE FROM webhook_deliveries WHERE webhook_id = ?", [webhook_id])
            tx.run("DELETE FROM webhooks WHERE id = ?", [webhook_id])
            tx.event("delete", "webhook", webhook_id, before, None)

        await self.db.tx(actor, run, changes_answers=False)

    async def list_deliveries(self, webhook_id: str, limit: int, cursor: str | None,
                              state: str | None) -> m.Page[m.WebhookDelivery]:  # fmt: skip
        check_id(webhook_id, "webhook", "webhook")
        equal = {"webhook_id": webhook_id, **({"state": state} if state else {})}

        def run(tx: Tx) -> m.Page[Row]:
            get_or_404(tx, "webhooks", webhook_id, "webhook")
            page = tx.page("webhook_deliveries", limit, cursor, equal=equal)
            page.items = [_delivery_view(r) for r in page.items]
            return page

        return page_of(m.WebhookDelivery, await self.db.read(run))

    async def redeliver(self, actor: str, webhook_id: str, delivery_id: str) -> m.WebhookDelivery:
        check_id(webhook_id, "webhook", "webhook")
        if not is_id(delivery_id, "delivery"):
            raise NotFound(f"no delivery {delivery_id!r}")

        def run(tx: Tx) -> Row:
            row = tx.one("SELECT * FROM webhook_deliveries WHERE id = ? AND webhook_id = ?", [delivery_id, webhook_id])
            if row is None:
                raise NotFound(f"no delivery {delivery_id} of webhook {webhook_id}")
            t = now()
            # Its attempts start again from none; a delivery in flight keeps its lease.
            tx.update("webhook_deliveries", delivery_id, {"state": "pending", "attempts": 0, "next_attempt_at": t,
                                                          "updated_at": t})  # fmt: skip
            after = _delivery_view(get_or_404(tx, "webhook_deliveries", delivery_id, "delivery"))
            tx.event("redeliver", "webhook", webhook_id, None, {"delivery_id": delivery_id, "type": row["type"]})
            return after

        return to(m.WebhookDelivery, await self.db.tx(actor, run, changes_answers=False))

    async def claim_deliveries(self, worker: str, lease: float, busy: Mapping[str, int], per_webhook: int,
                               limit: int) -> list[DeliveryJob]:  # fmt: skip
        """Takes due deliveries for ``worker`` for ``lease`` seconds: at most ``limit``, and of
        each webhook at most ``per_webhook`` less those ``busy`` in flight in this process
        already (so a slow receiver cannot take every slot)."""

        def run(tx: Tx) -> list[DeliveryJob]:
            t = now()
            due = "state = 'pending' AND next_attempt_at <= ? AND (lease_until IS NULL OR lease_until < ?)"
            hooks = tx.all(
                f"SELECT w.id, w.url, w.secret FROM webhooks w WHERE w.disabled = 0 AND EXISTS "
                f"(SELECT 1 FROM webhook_deliveries d WHERE d.webhook_id = w.id AND {due})",
                [t, t],
            )
            jobs: list[DeliveryJob] = []
            until = later(lease)
            for h in hooks:
                take = min(per_webhook - busy.get(h["id"], 0), limit - len(jobs))
                if take <= 0:
                    continue
                rows = tx.all(
                    f"SELECT id, attempts, payload FROM webhook_deliveries WHERE webhook_id = ? AND {due} "
                    f"ORDER BY next_attempt_at LIMIT ?{tx.skip_locked()}",
                    [h["id"], t, t, take],
                )
                tx.run_many(
                    "UPDATE webhook_deliveries SET lease_owner = ?, lease_until = ? WHERE id = ?",
                    [(worker, until, r["id"]) for r in rows],
                )
                jobs += [DeliveryJob(r["id"], h["id"], h["url"], h["secret"], r["payload"].encode(), int(r["attempts"]))
                         for r in rows]  # fmt: skip
            return jobs

        return await self.db.tx(worker, run, durable=False)

    async def finish_deliveries(self, worker: str, outcomes: Sequence[DeliveryOutcome]) -> None:
        """Settles attempts of deliveries ``worker`` holds (one it no longer holds is left
        alone): delivered, due again at ``retry_at``, or failed for good."""

        def run(tx: Tx) -> None:
            for o in outcomes:
                row = tx.one("SELECT attempts, log FROM webhook_deliveries WHERE id = ? AND lease_owner = ?", [o.id, worker])
                if row is None:
                    continue
                attempt = {"at": o.at, "status": o.status, "error": o.error, "seconds": round(o.seconds, 6)}
                log = [*json.loads(row["log"]), attempt][-ATTEMPTS_LOGGED:]
                state = "delivered" if o.delivered else ("pending" if o.retry_at is not None else "failed")
                changes: dict[str, Any] = {
                    "state": state, "attempts": int(row["attempts"]) + 1, "last_status": o.status, "last_error": o.error,
                    "log": json.dumps(log), "lease_owner": None, "lease_until": None, "updated_at": o.at,
                }  # fmt: skip
                if o.delivered:
                    changes["delivered_at"] = o.at
                if o.retry_at is not None:
                    changes["next_attempt_at"] = o.retry_at
                tx.update("webhook_deliveries", o.id, changes)

        await self.db.tx(worker, run, durable=False)
