"""The watch half: a watch-only coordinator's state (SQLite), sync against a chain source, and the
withdrawals it builds. Holds public keys only."""
