"""Keys and secrets: the KEK ring, envelope crypto, PHI columns, pseudonyms, key rotation."""
