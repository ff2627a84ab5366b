"""Training: image-folder datasets, a resumable trainer, and per-method recipes."""
