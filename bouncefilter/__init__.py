"""bouncefilter: bounce and complaint tracking for Postfix and Sendmail."""

__version__ = "0.1.0"
