"""The record types and the pure rules every flow shares: VERP, accounts, time windows."""
