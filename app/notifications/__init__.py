"""Notifications: emails and outgoing webhooks delivered from the outbox (docs/notifications.md)."""
