"""analytics: the appeals read model, its HTTP API and the dashboard for contact centres and the city.

See docs/analytics.md.
"""
