"""Replay: stored messages resubmitted, byte for byte, to the workflow engine's router (docs/replay.md)."""
