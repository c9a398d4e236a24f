"""analytics: read model, API and dashboard for contact centres and the city (issue #7; being built)."""
