"""What a run leaves: its folder (written and read here), summaries over seeds, figures."""
