"""Local stand-ins for what Azure provides: an embedded PostgreSQL (and, later, Azurite and sinks)."""
