"""Local stand-ins for what Azure provides: an embedded PostgreSQL, Azurite, an Event Grid topic, a webhook
receiver, and the settings of a local run."""
