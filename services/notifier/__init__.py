"""notifier: legal deadlines, alerts and citizen notifications (docs/notifier.md)."""
