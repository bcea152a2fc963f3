"""Text side of translation: tokenizer, mBART construction and vocabulary pruning."""
