"""slt-serve's training stack: data preparation, models, training stages and metrics."""
