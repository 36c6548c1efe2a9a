"""The ``bouncefilter`` command: its parser, its commands and their output."""
