"""Reports: markdown, plots and JSON rendered from typed results; nothing here measures."""
