"""Training: the loop over batches, and resumable runs that keep a checkpoint current."""
