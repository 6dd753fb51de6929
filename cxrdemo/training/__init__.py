"""Training: CLN's two stages, distillation, k-fold cross-validation and refit, thresholds, model soups (``python -m cxrdemo train / cv / soup``)."""
