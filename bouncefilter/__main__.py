"""``python -m bouncefilter``: the same as the ``bouncefilter`` command."""

from bouncefilter.cli.main import main

raise SystemExit(main())
