"""The classifier: a message in, a :class:`~bouncefilter.core.record.Classification` out; pure."""
