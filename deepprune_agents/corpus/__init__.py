"""Making our own trace corpora: question files -> N sampled solutions per question -> trace JSONL."""
