"""What every zhkh-appeals service shares: settings, logging, Kafka policy, Mongo, idempotency, HTTP."""
