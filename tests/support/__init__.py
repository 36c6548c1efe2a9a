"""Test helpers that start real parts: a throwaway Postfix (:mod:`.postfix_lab`),
bouncefilter installed on it as in production (:mod:`.bouncefilter_lab`), forwarding
targets (:mod:`.forward_lab`) and milter protocol clients (:mod:`.milter_client`). The
benchmarks under ``bench/`` and ``make demo`` use them too."""
