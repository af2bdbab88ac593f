"""``python -m synapse_lux_privacy check-config PATH`` (and every other command)."""

from synapse_lux_privacy.admin_cli.entry import main

raise SystemExit(main())
