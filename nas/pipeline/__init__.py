"""nas run: search, train the winner, export it, verify the export and write its model card, in one run folder."""
