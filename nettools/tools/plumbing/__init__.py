"""What the services share: ``service`` (listening, the ready line, running until
SIGINT/SIGTERM, draining, the summary), ``outbox`` (a per-client queue with the
slow-client policy) and ``lines`` (reading bounded lines from a socket)."""
