"""One conversation per connected client: input buffer, turns, responses, and the outbox."""
