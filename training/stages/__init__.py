"""Training stages: each `train(cfg)` reads as its steps (S2G, features, G2T, S2T)."""
