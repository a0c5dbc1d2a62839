"""The change feed: slim CloudEvents of a tenant's all-stream, published from per-sink checkpoints."""
