"""vsuite."""
