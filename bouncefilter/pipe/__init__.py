"""The inbound flow: the MTA's pipe transport, one bounce per process, with its exit contract."""
