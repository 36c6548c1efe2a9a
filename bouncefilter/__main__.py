"""``python -m bouncefilter``: the same as the ``bouncefilter`` command."""

from bouncefilter.cli import main

raise SystemExit(main())
