"""Data: reading sources (files, saved and hub datasets), tokenized datasets and position masks, aligned pairs,
token display and filters."""
