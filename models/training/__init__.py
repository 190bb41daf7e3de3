"""Training a bundle on a pulled release (its own ``configs/train.json``) into a candidate version."""
