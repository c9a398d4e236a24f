#!/usr/bin/env bash
# Writes the Kafka super user's client properties (listener INTERNAL, SASL PLAIN) to $1, from
# ZHKH_KAFKA_ADMIN_PASSWORD. Used by docker-compose.yml's kafka health check and kafka-init; the
# file stays inside the container (/tmp), the password is never on a command line.
set -euo pipefail
umask 077
printf 'security.protocol=SASL_PLAINTEXT\nsasl.mechanism=PLAIN\nsasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required username="admin" password="%s";\n' \
  "${ZHKH_KAFKA_ADMIN_PASSWORD:?}" > "$1"
