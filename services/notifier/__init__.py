"""notifier: legal deadlines and alerts (issue #5: delivery to people not implemented yet; see main.py)."""
