"""The configuration: :mod:`~bouncefilter.config.schema` declares every key,
:mod:`~bouncefilter.config.build` checks YAML data against it, and
:mod:`~bouncefilter.config.loader` reads the file (or its parsed copy). This face hands on
what the rest of bouncefilter uses."""

from bouncefilter.config.build import ConfigError
from bouncefilter.config.loader import (
                                      CACHE_SUFFIX,
                                      DEFAULT_PATH,
                                      ENVIRONMENT_VARIABLE,
                                      describe,
                                      load,
                                      locate,
                                      signing_keys,
                                      verp_keys,
                                      write_cache,
)
from bouncefilter.config.schema import (
                                      RETURN_PATH,
                                      Account,
                                      ApiSettings,
                                      ForwardSettings,
                                      ForwardTarget,
                                      LoggingSettings,
                                      MilterSettings,
                                      PipeSettings,
                                      RetentionSettings,
                                      Settings,
                                      SmtpSettings,
                                      SoftSettings,
                                      SuppressionSettings,
                                      VerpSettings,
                                      listen_address,
                                      secret_key,
)

__all__ = ["CACHE_SUFFIX", "DEFAULT_PATH", "ENVIRONMENT_VARIABLE", "RETURN_PATH", "Account", "ApiSettings", "ConfigError",
           "ForwardSettings", "ForwardTarget", "LoggingSettings", "MilterSettings", "PipeSettings", "RetentionSettings",
           "Settings", "SmtpSettings", "SoftSettings", "SuppressionSettings", "VerpSettings",
           "describe", "listen_address", "load", "locate", "secret_key",
           "signing_keys", "verp_keys", "write_cache"]
