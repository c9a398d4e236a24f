"""router: assigns the responsible party and owns the appeal lifecycle."""
