"""``python -m synapse_lux_privacy check-config PATH``."""

from synapse_lux_privacy.cli import main

raise SystemExit(main())
