"""Second looks at a detector's candidates: each verifier confirms or rejects boxes another model found."""
