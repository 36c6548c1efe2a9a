"""The outbound flow: the milter that signs envelope senders and records what was sent."""
