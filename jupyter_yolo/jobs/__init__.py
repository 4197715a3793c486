"""Jobs: the registry, the queue, the runner processes and their event files."""
