"""Forwarding stored events by SMTP and web hooks, from the durable outbox."""
