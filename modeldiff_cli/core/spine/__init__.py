"""The spine: how a command is declared (options, ingredients, what is compared), run (run directories,
fingerprints, checkpoints, data-parallel ranks, stage timings) and how it writes (artifacts, plots, terminal)."""
