"""Training: corpus batching, held-out loss (continued training and fine-tuning build on these)."""
