"""Entropy models for the side streams (the base codec uses CompressAI's own)."""
