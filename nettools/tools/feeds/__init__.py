"""Feeds: ``fetcher`` (fetch and parse many feeds at once), ``cache`` (conditional
GET state in SQLite) and ``service`` (the HTTP service behind ``feeds serve``)."""
