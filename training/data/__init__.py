"""Data preparation: annotation schema, importers, glosses, vocabularies, frames, synthetic corpus."""
