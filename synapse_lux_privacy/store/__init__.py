"""The module's own tables: schema, audit, legal holds, sweep lock and sweep runs."""
